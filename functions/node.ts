/**
 * `npm start`: the Node server. With no S3 configured it is a zero-configuration demo: an
 * in-process S3 server on 127.0.0.1 (data in .data/), the bundled sample database, one
 * backup right away with a signed link, then backups on SCHEDULE until Ctrl-C.
 */
import { fileURLToPath } from "node:url";
import { Cron } from "croner";
import { createLink } from "../src/catalog.js";
import type { Env } from "../src/config.js";
import { redact } from "../src/log.js";
import { describeError } from "./cli.js";
import { startEmbeddedS3, type EmbeddedS3 } from "./embedded-s3.js";
import { createNodeContext } from "./node-context.js";

const root = fileURLToPath(new URL("..", import.meta.url));
export const SAMPLE_DB = `${root}sample/sample.db`;

async function main(): Promise<void> {
  const env: Record<string, string | undefined> = { ...process.env };
  let embedded: EmbeddedS3 | undefined;
  if (!env.S3_BUCKET && !env.S3_ENDPOINT) {
    embedded = await startEmbeddedS3({ directory: `${root}.data/s3rver`, bucket: "backups" });
    Object.assign(env, {
      S3_ENDPOINT: embedded.endpoint,
      S3_REGION: embedded.region,
      S3_BUCKET: embedded.bucket,
      S3_ACCESS_KEY_ID: embedded.accessKeyId,
      S3_SECRET_ACCESS_KEY: embedded.secretAccessKey,
    });
    process.stderr.write(`demo: no S3_BUCKET/S3_ENDPOINT set, so using an embedded S3 server at ${embedded.endpoint} (data in .data/s3rver)\n`);
  }
  env.BACKUP_SOURCE ??= SAMPLE_DB;

  const ctx = await createNodeContext(env as Env);
  const { config, logger } = ctx;

  const manifest = await ctx.backup.run();
  const link = await createLink(ctx.store, config, "latest", ctx.runtime.now());
  process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n\n`);
  process.stdout.write(`Signed download link (valid ${config.linkTtlSeconds} s${embedded ? ", while this process runs" : ""}):\n${link.url}\n\n`);
  process.stdout.write(`Try it:\n  curl -s '${link.url}' | gunzip > restored.db && sqlite3 restored.db 'PRAGMA integrity_check'\n\n`);

  const job = new Cron(config.schedule, { timezone: "UTC", protect: true }, async () => {
    try {
      await ctx.backup.run();
    } catch {
      // already logged by the runner with its code; the next tick tries again
    }
  });
  logger.info("scheduler started", { schedule: config.schedule, nextRun: job.nextRun()?.toISOString() });
  process.stdout.write(`Next scheduled backup: ${job.nextRun()?.toISOString()} (SCHEDULE="${config.schedule}", UTC). Ctrl-C to stop.\n`);

  const stop = async () => {
    job.stop();
    await embedded?.close();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${redact(describeError(err), [process.env.S3_SECRET_ACCESS_KEY ?? "", process.env.API_KEY ?? ""])}\n`);
  process.exit(1);
});
