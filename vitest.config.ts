import { defineConfig } from "vitest/config";

// `npm test`: every suite, against the in-process S3 server (see test/helpers/s3.ts).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    globalSetup: ["test/workers/global-setup.ts"],
  },
});
