/**
 * Cloudflare Workers entry point: `fetch` serves the HTTP API, `scheduled` runs one backup
 * per cron trigger (wrangler.toml [triggers] crons). Configuration comes from [vars] and
 * secrets (`wrangler secret put S3_SECRET_ACCESS_KEY`, `API_KEY`). The same handlers are
 * what the package offers an existing Worker: functions/lib/worker.ts
 * (`sqlite-edge-backup/worker`).
 */
import { createBackupWorker, type BackupEnv } from "./lib/worker.js";

/** [vars] of wrangler.toml and secrets (`wrangler secret put`): the contract's variables, all strings. */
export type Env = BackupEnv;

// Only the default export: workerd treats every named export of the main module as an entry point.
export default createBackupWorker() satisfies ExportedHandler<Env>;
