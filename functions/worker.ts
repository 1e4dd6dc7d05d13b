/**
 * Cloudflare Workers entry point: `fetch` serves the HTTP API, `scheduled` runs one backup
 * per cron trigger (wrangler.toml [triggers] crons). Configuration comes from [vars] and
 * secrets (`wrangler secret put S3_SECRET_ACCESS_KEY`, `API_KEY`).
 */
import { createApp } from "../src/api/app.js";
import { parseConfig, secretsOf, type ConfigVariable } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { createNotifier, type Notifier } from "../src/notify.js";
import { createFleet, type Fleet } from "../src/fleet.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { consoleLogger, createWorkerRuntime } from "./worker-runtime.js";

/** [vars] of wrangler.toml and secrets (`wrangler secret put`): the contract's variables, all strings. */
export type Env = { readonly [K in ConfigVariable]?: string };

// Not exported: workerd treats every named export of the main module as an entry point.
/**
 * MAX_BYTES's default on Workers follows the CPU limit, not memory (the backup streams): at
 * the measured CPU per MiB (README "Workers limits"), 4 GiB is what `[limits] cpu_ms = 300000`
 * (5 minutes, the most a paid plan allows) covers.
 */
const WORKERS_MAX_BYTES = 4 * 1024 ** 3;

interface Instance {
  fleet: Fleet;
  app: ReturnType<typeof createApp>;
  logger: ReturnType<typeof consoleLogger>;
  /** With NOTIFY_URL; its deliveries run past the response, kept alive by ctx.waitUntil. */
  notifier?: Notifier;
}

// One service per isolate: its single-flight guard and last-run status live as long as it.
let instance: Promise<Instance> | undefined;

function getInstance(env: Env): Promise<Instance> {
  instance ??= (async () => {
    const config = parseConfig(env, { maxBytes: WORKERS_MAX_BYTES });
    const logger = consoleLogger(secretsOf(config));
    const runtime = await createWorkerRuntime(logger);
    // Each part in flight costs the isolate its 5 MiB plus copies until the next GC
    // (bench/workerd-memory.ts: 4 in flight peaked 8–20 MiB above 2), and memory, not
    // connections (6 per invocation), is what limits a Worker's database size.
    const store = createS3Store(config.s3, { queueSize: 2 });
    const notifier = config.notify ? createNotifier(config.notify, { fetch: (input, init) => fetch(input, init), logger, now: () => new Date(), secrets: secretsOf(config) }) : undefined;
    const fleet = createFleet({ config, runtime, store, source: (db) => createSource(db.source, { s3: config.s3 }) }, { holder: "workers", ...(notifier ? { notifier } : {}) });
    return { fleet, app: createApp({ services: fleet.services, logger, corsOrigins: config.corsOrigins, ...(config.apiKey ? { apiKey: config.apiKey } : {}) }), logger, ...(notifier ? { notifier } : {}) };
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
    let notifier: Instance["notifier"];
    try {
      ({ app, notifier } = await getInstance(env));
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "configuration invalid", error: err instanceof Error ? err.message : String(err) }));
      return configErrorResponse(err);
    }
    const response = await app.fetch(request, env, ctx);
    // A POST /backups has started its notification by now: it may finish after the response.
    if (notifier) ctx.waitUntil(notifier.idle());
    return response;
  },

  async scheduled(controller, env, ctx) {
    let fleet: Fleet;
    let logger: Instance["logger"];
    let notifier: Instance["notifier"];
    try {
      ({ fleet, logger, notifier } = await getInstance(env));
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "scheduled backup not started: configuration invalid", cron: controller.cron, error: err instanceof Error ? err.message : String(err) }));
      throw err;
    }
    // The window is the trigger's nominal time: an overlapping invocation or a Node instance on
    // the same schedule names the same window, and the one that finds it covered does nothing.
    // Every database in turn (BACKUP_SOURCES); one failing does not stop the others.
    const run = fleet.scheduledAll(new Date(controller.scheduledTime));
    ctx.waitUntil(run.then(() => notifier?.idle()));
    try {
      const failures: BackupError[] = [];
      for (const r of await run) {
        if (r.ok && r.result.ran) logger.info("scheduled backup done", { cron: controller.cron, name: r.name, key: r.result.manifest.key, bytes: r.result.manifest.bytes, durationMs: r.result.manifest.durationMs });
        else if (r.ok && !r.result.ran) logger.info("scheduled backup skipped", { cron: controller.cron, name: r.name, reason: r.result.reason });
        else if (!r.ok && r.error.code === "BACKUP_RUNNING") logger.warn("scheduled backup skipped: one is already running", { cron: controller.cron, name: r.name, reason: r.error.message });
        else if (!r.ok) failures.push(r.error);
      }
      // Throw so that Workers records this invocation as failed (each failure is logged already).
      if (failures.length === 1) throw failures[0];
      if (failures.length > 1) throw new BackupError(failures[0]!.code, `${failures.length} of ${fleet.names.length} backups failed: ${failures.map((e) => e.message).join("; ")}`, failures[0]!.status);
    } finally {
      // Nobody waits for a cron invocation: let it end with the alert delivered (bounded).
      await notifier?.idle();
    }
  },
} satisfies ExportedHandler<Env>;
