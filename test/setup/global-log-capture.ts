/**
 * vitest globalSetup for the log capture (see test/helpers/log-capture.ts): makes the run
 * directory, hands it to every test process, and after the run scans everything captured for
 * every registered secret. A leak fails the run, naming the secret's kind and the file (never
 * the value), and the directory is kept for inspection; a clean run removes it.
 *
 * What counts as a secret, and what deliberately does not:
 * - API keys and BACKUP_SOURCE_HEADERS values the tests configure (registered by the helpers
 *   that make them), and the environment of every CLI run (test/helpers/cli.ts).
 * - The external test store's secret key (S3_TEST_SECRET_ACCESS_KEY), when it is distinct
 *   from its access key id and at least MIN_SECRET_LENGTH long. s3rver's S3RVER is its access
 *   key id as well, which every signed request and link carries (X-Amz-Credential), so it
 *   cannot be told apart from a legitimate occurrence; Swift's tempauth secret "testing" is a
 *   word tests print anyway. Neither is a secret in any meaningful sense (both are public
 *   defaults), so neither is registered.
 * - Signed links contain the access key id and a signature, never the secret key.
 * - `npm start`'s demo prints its generated API key on purpose (functions/node.ts); no test
 *   runs the demo, and a test that did must not register that key.
 */
import { appendFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { describeLeaks, findLeaks, readCapture } from "../helpers/log-capture-scan.js";
import { MIN_SECRET_LENGTH, SECRETS_DIR } from "../helpers/log-capture.js";

declare module "vitest" {
  interface ProvidedContext {
    /** The run directory of the log capture. */
    logCaptureDir?: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), "sqlite-edge-backup-logs-"));
  project.provide("logCaptureDir", dir);
  await mkdir(join(dir, SECRETS_DIR), { recursive: true });
  const { S3_TEST_SECRET_ACCESS_KEY: secret, S3_TEST_ACCESS_KEY_ID: id } = process.env;
  if (secret && secret !== id && secret.length >= MIN_SECRET_LENGTH) {
    await appendFile(join(dir, SECRETS_DIR, "global.jsonl"), `${JSON.stringify({ kind: "S3_TEST_SECRET_ACCESS_KEY", value: secret })}\n`);
  }

  return async () => {
    const { files, secrets } = await readCapture(dir);
    if (files.length === 0) {
      process.exitCode = 1;
      throw new Error(`log capture: nothing was captured in ${dir}; is test/setup/log-capture.ts in setupFiles?`);
    }
    const leaks = findLeaks(files, secrets);
    if (leaks.length) {
      // vitest reports an error thrown here ("error during close") but still exits 0.
      process.exitCode = 1;
      throw new Error(describeLeaks(leaks, dir));
    }
    const kinds = new Set(secrets.map((s) => s.kind));
    process.stdout.write(`log capture: ${files.length} files scanned for ${new Set(secrets.map((s) => s.value)).size} secrets (${[...kinds].sort().join(", ")}): no leak\n`);
    await rm(dir, { recursive: true, force: true });
  };
}
