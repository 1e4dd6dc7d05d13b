/**
 * `npm start`: the Node server (HTTP API + scheduler). With no S3 configured it is a
 * zero-configuration demo: an in-process S3 server on 127.0.0.1 (data in .data/), the
 * bundled sample database, a generated API key, one backup right away with a signed link,
 * and ready-to-paste curl commands for every route. Ctrl-C stops it.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { redact } from "../src/log.js";
import { describeError } from "./cli.js";
import { startEmbeddedS3, type EmbeddedS3 } from "./embedded-s3.js";
import { startServer } from "./node-server.js";

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
  const demoKey = env.API_KEY ? undefined : randomBytes(24).toString("base64url");
  if (demoKey) env.API_KEY = demoKey;

  // The demo backs up right away below, so the scheduler's start-up catch-up is not needed.
  const server = await startServer(env, { catchUp: false });
  const { ctx, url } = server;
  const manifest = await ctx.service.backup();
  const link = await ctx.service.link("latest");
  const out = (s = "") => process.stdout.write(`${s}\n`);
  out(JSON.stringify(manifest, null, 2));
  out();
  out(`Signed download link (valid ${ctx.config.linkTtlSeconds} s${embedded ? ", while this process runs" : ""}):`);
  out(link.url);
  out();
  out("Check it:");
  out(`  curl -s '${link.url}' | gunzip > restored.db && sqlite3 restored.db 'PRAGMA integrity_check'`);
  out();
  out(`HTTP API on ${url}${demoKey ? ` — demo API key (generated for this run): ${demoKey}` : " — API key: $API_KEY"}`);
  const auth = `-H 'Authorization: Bearer ${demoKey ?? "$API_KEY"}'`;
  out(`  curl -s ${url}/health`);
  out(`  curl -s -X POST ${auth} ${url}/backups`);
  out(`  curl -s ${auth} ${url}/backups`);
  out(`  curl -s ${auth} ${url}/backups/latest/link`);
  out(`  curl -s ${auth} ${url}/backups/${manifest.file}/link`);
  out(`  curl -sL ${auth} '${url}/backups/latest/link?redirect=1' | gunzip > latest.db && sqlite3 latest.db 'PRAGMA integrity_check'`);
  out(`  curl -s ${auth} ${url}/status`);
  out(`  curl -s ${url}/openapi.json`);
  out();
  out(`Next scheduled backup: ${ctx.service.status().nextRun} (SCHEDULE="${ctx.config.schedule}", UTC). Ctrl-C to stop.`);

  const stop = async () => {
    await server.stop();
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
