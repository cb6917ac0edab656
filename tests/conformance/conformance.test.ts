// Runs the official conformance suite against the server at DS_BASE_URL.
// DS_SUBSCRIPTIONS=1 enables the subscription block (protocol sections 6-7).
// DS_TOKEN, when set, is sent as `Authorization: Bearer` with every request the suite makes
// that carries no Authorization of its own (the suite has no header option, so its `fetch`
// is wrapped): this runs the suite against a server in `auth.mode = "token"`.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.DS_BASE_URL
if (!baseUrl) throw new Error("DS_BASE_URL is not set")

const token = process.env.DS_TOKEN
if (token) {
  const plainFetch = globalThis.fetch
  globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit) => {
    const fromRequest = input instanceof Request ? input.headers : undefined
    const headers = new Headers(init?.headers ?? fromRequest)
    // A wake's callback carries its own token: only requests to the server under test without
    // one get the access token.
    const url = input instanceof Request ? input.url : String(input)
    if (!headers.has("authorization") && url.startsWith(baseUrl)) {
      headers.set("authorization", `Bearer ${token}`)
    }
    return plainFetch(input, { ...init, headers })
  }
}

runConformanceTests({ baseUrl, subscriptions: process.env.DS_SUBSCRIPTIONS === "1" })
