import { configDefaults, defineConfig } from "vitest/config";
import { LONG_SUITES } from "./vitest.suites";

// `npm test`: the quick loop — every module's suites against the in-process S3 server (see
// test/helpers/s3.ts); the slow suites listed in vitest.suites.ts run in `npm run test:long`.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: [...configDefaults.exclude, ...LONG_SUITES],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // expect.poll's default of 1 s is shorter than a run's start on a server without conditional
    // writes (Swift: the lease's best-effort wait is 1 s): the browser suite polls for progress.
    expect: { poll: { timeout: 15_000 } },
    // vitest's default is one fork per core minus one: a single fork on 2 cores. Most files wait
    // on servers and child processes more than they compute, so two at a time nearly halve the run.
    maxWorkers: 2,
    // The log capture: every test file's output, scanned for secrets after the run (issue 6).
    setupFiles: ["test/setup/log-capture.ts"],
    globalSetup: ["test/workers/global-setup.ts", "test/setup/global-log-capture.ts"],
  },
});
