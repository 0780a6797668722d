import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Every test file shares one machine's kernel state; running files one at a time keeps
    // thread and fd counts meaningful in the leak tests.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    setupFiles: ["test/setup.ts"]
  }
})
