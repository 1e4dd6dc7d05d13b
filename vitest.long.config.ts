import { defineConfig } from "vitest/config";

// `npm run test:long`: suites too slow or too large for every run (a database past 1 GiB, so
// the lock-byte page is crossed). Real SQLite files, no S3 server needed.
export default defineConfig({
  test: {
    include: ["test/long/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: "forks",
    setupFiles: ["test/setup/log-capture.ts"],
    globalSetup: ["test/setup/global-log-capture.ts"],
  },
});
