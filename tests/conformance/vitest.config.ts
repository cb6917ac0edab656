import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["conformance.test.ts"],
    // Keep the suite's own timeouts; run in one worker so timing-sensitive tests are not starved.
    fileParallelism: false,
  },
})
