/**
 * Cloudflare Workers entry point: `fetch` serves the HTTP API, `scheduled` runs one backup
 * per cron trigger (wrangler.toml [triggers] crons). Configuration comes from [vars] and
 * secrets (`wrangler secret put S3_SECRET_ACCESS_KEY`, `API_KEY`).
 */
import { createApp } from "../src/api/app.js";
import { parseConfig, secretsOf, type ConfigVariable } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { createBackupService, type BackupService } from "../src/service.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { consoleLogger, createWorkerRuntime } from "./worker-runtime.js";

/** [vars] of wrangler.toml and secrets (`wrangler secret put`): the contract's variables, all strings. */
export type Env = { readonly [K in ConfigVariable]?: string };

// Not exported: workerd treats every named export of the main module as an entry point.
const WORKERS_MAX_BYTES = 100_000_000;

interface Instance {
  service: BackupService;
  app: ReturnType<typeof createApp>;
  logger: ReturnType<typeof consoleLogger>;
}

// One service per isolate: its single-flight guard and last-run status live as long as it.
let instance: Promise<Instance> | undefined;

function getInstance(env: Env): Promise<Instance> {
  instance ??= (async () => {
    const config = parseConfig(env, { maxBytes: WORKERS_MAX_BYTES });
    const logger = consoleLogger(secretsOf(config));
    const runtime = await createWorkerRuntime(logger);
    // Workers allow 6 simultaneous connections per invocation: keep parts in flight ≤ 4.
    const store = createS3Store(config.s3, { queueSize: 4 });
    const source = createSource(config.source, { s3: config.s3 });
    const service = createBackupService({ config, runtime, store, source });
    return { service, app: createApp({ service, logger, ...(config.apiKey ? { apiKey: config.apiKey } : {}) }), logger };
  })().catch((err: unknown) => {
    instance = undefined; // a fixed configuration is picked up on the next request
    throw err;
  });
  return instance;
}

function configErrorResponse(err: unknown): Response {
  const e = err instanceof BackupError ? err : new BackupError("INTERNAL", "the worker failed to start", 500);
  return Response.json({ error: { code: e.code, message: e.message } }, { status: 500, headers: { "X-Content-Type-Options": "nosniff" } });
}

export default {
  async fetch(request, env, ctx) {
    let app: Instance["app"];
    try {
      ({ app } = await getInstance(env));
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "configuration invalid", error: err instanceof Error ? err.message : String(err) }));
      return configErrorResponse(err);
    }
    return app.fetch(request, env, ctx);
  },

  async scheduled(controller, env, ctx) {
    let service: BackupService;
    let logger: Instance["logger"];
    try {
      ({ service, logger } = await getInstance(env));
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "scheduled backup not started: configuration invalid", cron: controller.cron, error: err instanceof Error ? err.message : String(err) }));
      throw err;
    }
    const run = service.backup();
    ctx.waitUntil(run.catch(() => undefined));
    try {
      const manifest = await run;
      logger.info("scheduled backup done", { cron: controller.cron, key: manifest.key, bytes: manifest.bytes, durationMs: manifest.durationMs });
    } catch (err) {
      if (err instanceof BackupError && err.code === "BACKUP_RUNNING") {
        logger.warn("scheduled backup skipped: one is already running", { cron: controller.cron });
        return;
      }
      // Rethrow so that Workers records this invocation as failed.
      throw err;
    }
  },
} satisfies ExportedHandler<Env>;
