import { configDefaults, defineConfig } from "vitest/config";

// `npm run test:integration`: the same suites against an external S3 server named by
// S3_TEST_ENDPOINT (Swift in CI, MinIO locally), and the sqlite3 and age CLI cross-checks are required.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: [...configDefaults.exclude, "test/long/**"],
    setupFiles: ["test/helpers/require-integration-env.ts", "test/setup/log-capture.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // expect.poll's default of 1 s is shorter than a run's start on a server without conditional
    // writes (Swift: the lease's best-effort wait is 1 s): the browser suite polls for progress.
    expect: { poll: { timeout: 15_000 } },
    globalSetup: ["test/workers/global-setup.ts", "test/setup/global-log-capture.ts"],
    env: { REQUIRE_SQLITE_CLI: "1", REQUIRE_AGE_CLI: "1" },
  },
});
