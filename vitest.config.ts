import { defineConfig } from "vitest/config";

// `npm test`: every suite, against the in-process S3 server (see test/helpers/s3.ts).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // The log capture: every test file's output, scanned for secrets after the run (issue 6).
    setupFiles: ["test/setup/log-capture.ts"],
    globalSetup: ["test/workers/global-setup.ts", "test/setup/global-log-capture.ts"],
  },
});
