import { defineConfig } from "vitest/config";

// `npm run test:long`: suites too slow or too large for every run (a database past 1 GiB, so
// the lock-byte page is crossed; ~300 MiB round trips through the Worker in workerd). Real
// SQLite files; the S3 server is the in-process one each file starts (test/helpers/s3.ts), or
// S3_TEST_*. The Worker bundle is built once per run by the Workers suite's globalSetup (here
// only: `npm test`'s config is unchanged).
export default defineConfig({
  test: {
    include: ["test/long/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: "forks",
    setupFiles: ["test/setup/log-capture.ts"],
    globalSetup: ["test/workers/global-setup.ts", "test/setup/global-log-capture.ts"],
  },
});
