import { defineConfig } from "vitest/config";
import { LONG_SUITES } from "./vitest.suites";

// `npm run test:long`: the suites too slow or too large for every run (vitest.suites.ts: soak,
// fault matrix, processes, live writers, a database past 1 GiB so the lock-byte page is crossed,
// ~300 MiB round trips through the Worker in workerd). Real SQLite files; the S3 server is the
// in-process one each file starts (test/helpers/s3.ts), or S3_TEST_*.
export default defineConfig({
  test: {
    include: [...LONG_SUITES],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: "forks",
    // expect.poll's default of 1 s is shorter than a run's start on a server without conditional
    // writes (Swift: the lease's best-effort wait is 1 s): the browser suite polls for progress.
    expect: { poll: { timeout: 15_000 } },
    setupFiles: ["test/setup/log-capture.ts"],
    globalSetup: ["test/workers/global-setup.ts", "test/setup/global-log-capture.ts"],
  },
});
