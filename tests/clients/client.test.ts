// The published TypeScript client (@durable-streams/client, pinned in package.json) against a
// running server: DS_BASE_URL is its stream base (http://host:port/v1/stream), started with
// testing.fault_injection = true (scripts/clients.sh does both).
import { describe, expect, it } from "vitest"
import { DurableStream, IdempotentProducer, stream } from "@durable-streams/client"

const base = process.env.DS_BASE_URL
if (!base) throw new Error("DS_BASE_URL (the server's stream base URL) is not set")

const fresh = (what: string) => `clients/ts/${what}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`

async function inject(fault: Record<string, unknown>) {
  const r = await fetch(`${base}/_test/inject-error`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(fault),
  })
  expect(r.status).toBe(200)
}

describe("the TypeScript client", () => {
  it("creates a JSON stream, appends through an idempotent producer, closes it and reads it back", async () => {
    const name = fresh("json")
    const url = `${base}/${name}`
    const handle = await DurableStream.create({ url, contentType: "application/json" })
    const producer = new IdempotentProducer(handle, "writer-1")
    for (let i = 0; i < 50; i++) producer.append(JSON.stringify({ i }))
    await producer.flush()
    const closed = await producer.close(JSON.stringify({ i: 50 }))
    expect(closed.finalOffset).toMatch(/^\d+_\d+$/)
    const res = await stream<{ i: number }>({ url, offset: "-1", live: false })
    const items = await res.json()
    expect(items.map((x) => x.i)).toEqual([...Array(51).keys()])
    expect(res.streamClosed).toBe(true)
    const head = await handle.head()
    expect(head.exists).toBe(true)
  })

  it("reads bytes from an offset (catch-up) and resumes where it stopped", async () => {
    const url = `${base}/${fresh("bytes")}`
    const handle = await DurableStream.create({ url, contentType: "text/plain" })
    await handle.append("hello ")
    const first = await stream({ url, offset: "-1", live: false })
    expect(await first.text()).toBe("hello ")
    const resumeAt = first.offset
    await handle.append("world")
    const rest = await stream({ url, offset: resumeAt, live: false })
    expect(await rest.text()).toBe("world")
  })

  for (const live of ["long-poll", "sse"] as const) {
    it(`follows a stream live (${live}) and sees appends made after it started`, async () => {
      const url = `${base}/${fresh(live)}`
      const handle = await DurableStream.create({ url, contentType: "application/json" })
      const res = await stream<{ n: number }>({ url, offset: "-1", live })
      const seen: Array<number> = []
      const done = new Promise<void>((resolve) => {
        res.subscribeJson(async (batch) => {
          for (const item of batch.items) seen.push(item.n)
          if (seen.length >= 5) resolve()
        })
      })
      for (let n = 0; n < 5; n++) {
        await handle.append(JSON.stringify({ n }))
        await new Promise((r) => setTimeout(r, 50))
      }
      await done
      res.cancel()
      expect(seen).toEqual([0, 1, 2, 3, 4])
    })
  }

  it("retries reads through injected 503s (honouring Retry-After) and a dropped connection", async () => {
    const name = fresh("retry")
    const url = `${base}/${name}`
    const handle = await DurableStream.create({ url, contentType: "text/plain" })
    await handle.append("survived")
    await inject({ path: `/${name}`, status: 503, retryAfter: 1, count: 2, method: "GET" })
    const started = Date.now()
    const res = await stream({ url, offset: "-1", live: false })
    expect(await res.text()).toBe("survived")
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900)
    await inject({ path: `/${name}`, dropConnection: true, method: "GET" })
    const again = await stream({ url, offset: "-1", live: false })
    expect(await again.text()).toBe("survived")
  })

  it("retries an append through injected 503s and stores it once", async () => {
    const name = fresh("append-retry")
    const url = `${base}/${name}`
    const handle = await DurableStream.create({ url, contentType: "application/json" })
    await inject({ path: `/${name}`, status: 503, count: 2, method: "POST" })
    await handle.append(JSON.stringify({ once: true }))
    const items = await (await stream({ url, offset: "-1", live: false })).json()
    expect(items).toEqual([{ once: true }])
  })

  it("reports an idempotent producer's failed batch (its fetch does not retry) and the stream keeps nothing of it", async () => {
    const name = fresh("producer-503")
    const url = `${base}/${name}`
    const handle = await DurableStream.create({ url, contentType: "application/json" })
    const errors: Array<Error> = []
    const producer = new IdempotentProducer(handle, "writer-e", { onError: (e) => errors.push(e) })
    await inject({ path: `/${name}`, status: 503, count: 1, method: "POST" })
    producer.append(JSON.stringify({ lost: true }))
    await producer.flush().catch(() => {})
    expect(errors.length).toBeGreaterThan(0)
    const items = await (await stream({ url, offset: "-1", live: false })).json()
    expect(items).toEqual([])
  })
})
