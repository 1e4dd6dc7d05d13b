import { configDefaults, defineConfig } from "vitest/config";

// `npm test`: every suite, against the in-process S3 server (see test/helpers/s3.ts).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The long suite (a database past 1 GiB, ~1 min and ~2.3 GB of disk): `npm run test:long`.
    exclude: [...configDefaults.exclude, "test/long/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // The log capture: every test file's output, scanned for secrets after the run (issue 6).
    setupFiles: ["test/setup/log-capture.ts"],
    globalSetup: ["test/workers/global-setup.ts", "test/setup/global-log-capture.ts"],
  },
});
