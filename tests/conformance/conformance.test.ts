// Runs the official conformance suite against the server at DS_BASE_URL.
// DS_SUBSCRIPTIONS=1 enables the subscription block (protocol sections 6-7).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.DS_BASE_URL
if (!baseUrl) throw new Error("DS_BASE_URL is not set")

runConformanceTests({ baseUrl, subscriptions: process.env.DS_SUBSCRIPTIONS === "1" })
