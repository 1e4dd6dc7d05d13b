const missing = ["S3_TEST_ENDPOINT", "S3_TEST_ACCESS_KEY_ID", "S3_TEST_SECRET_ACCESS_KEY"].filter((v) => !process.env[v]);
if (missing.length) {
  throw new Error(
    `the integration suite needs a real S3 server: set ${missing.join(", ")} (e.g. eval "$(scripts/swift-s3.sh start)" and map S3_* to S3_TEST_*, as .ci/run does)`,
  );
}
