/**
 * Backups inside an existing Cloudflare Worker (`import … from "sqlite-edge-backup/worker"`).
 * The Worker's `env` carries the same variables as wrangler.toml [vars] and secrets of this
 * project's own Worker (BACKUP_SOURCE, S3_*, API_KEY, …; docs/configuration.md).
 *
 *   backupHandlers(env)   the handler factory: { fetch(request, ctx), scheduled(controller, ctx), app() }
 *   backupApp             a Hono app to mount under a path: `app.route("/backup", backupApp)`
 *   createBackupWorker()  a whole Worker: `export default createBackupWorker()` (functions/worker.ts)
 *
 * One backup service per configuration and isolate: its single-flight guard and last-run
 * status live as long as the isolate. The bundler must alias `@aws-sdk/xml-builder` to its
 * CJS build (wrangler.toml [alias], docs/workers.md), and bundle sql.js's .wasm
 * as a compiled module (wrangler does by default).
 */
import { Cron } from "croner";
import { Hono } from "hono";
import { createApp, downloadsOf } from "../../src/api/app.js";
import { CONFIG_VARIABLES, parseConfig, secretsOf, type ConfigVariable } from "../../src/config.js";
import { BackupError } from "../../src/errors.js";
import { createFleet, type Fleet, type FleetRun } from "../../src/fleet.js";
import { createNotifier, type Notifier } from "../../src/notify.js";
import { createSource } from "../../src/sources/index.js";
import { createR2Store, isR2Bucket, type R2BucketLike } from "../../src/store/r2.js";
import { createS3Store } from "../../src/store/s3.js";
import type { BackupStore } from "../../src/store/store.js";
import { consoleLogger, createWorkerRuntime, WORKER_D1_DUMP_MAX_BYTES } from "../worker-runtime.js";

export { BackupError } from "../../src/errors.js";
export { VERSION } from "../../src/version.js";
export type { ConfigVariable } from "../../src/config.js";
export type { FleetRun } from "../../src/fleet.js";

/**
 * [vars] and secrets: the contract's variables, all strings. Other bindings are read only
 * when a variable names them: R2_BUCKET=BACKUPS and r2://BACKUPS/… sources use env.BACKUPS.
 */
export type BackupEnv = { readonly [K in ConfigVariable]?: string };

/** What the handlers use of the Workers ExecutionContext. */
export interface ExecutionContextLike {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException?(): void;
}

/** What the handlers use of the Workers ScheduledController (the cron trigger). */
export interface ScheduledControllerLike {
  readonly scheduledTime: number;
  readonly cron: string;
}

/** The backup API app (routes /health, /backups, …, /openapi.json): a Hono app with OpenAPI routes. */
export type BackupApiApp = ReturnType<typeof createApp>;

export interface BackupHandlers {
  /** Serve the backup API; `request`'s path is taken as is (/backups, /health, …). */
  fetch(request: Request, ctx?: ExecutionContextLike): Promise<Response>;
  /**
   * Run the scheduled backup of every database for the trigger's time (a window already covered
   * is skipped); rejects when a backup failed, so that Workers records the invocation as failed.
   */
  scheduled(controller: ScheduledControllerLike, ctx: ExecutionContextLike): Promise<FleetRun[]>;
  /** The API app itself, e.g. to call its `request()` in tests. */
  app(): Promise<BackupApiApp>;
}

/**
 * MAX_BYTES's default on Workers follows the CPU limit, not memory (the backup streams): at
 * the measured CPU per MiB (docs/workers.md, "Limits"), 4 GiB is what `[limits] cpu_ms = 300000`
 * (5 minutes, the most a paid plan allows) covers.
 */
const WORKERS_MAX_BYTES = 4 * 1024 ** 3;

interface Instance {
  fleet: Fleet;
  app: BackupApiApp;
  logger: ReturnType<typeof consoleLogger>;
  /** With NOTIFY_URL; its deliveries run past the response, kept alive by ctx.waitUntil. */
  notifier?: Notifier;
  /** The cron of the last trigger this isolate ran (what /status's nextRun follows). */
  schedule: { cron?: string };
}

/**
 * The next run on Workers: the triggers live in wrangler.toml, which the Worker cannot read.
 * The cron of the last trigger this isolate ran is the best knowledge; before one, SCHEDULE
 * if the deployment set it (its default says nothing about the triggers); else unknown.
 */
function nextTrigger(lastCron: string | undefined, schedule: string | undefined, now: Date): Date | undefined {
  const cron = lastCron ?? schedule;
  if (!cron) return undefined;
  try {
    return new Cron(cron, { timezone: "UTC" }).nextRun(now) ?? undefined;
  } catch {
    return undefined; // a trigger format croner does not read: unknown, not an error
  }
}

// Keyed by the configuration's variables: the same env (however workerd passes it) gets the
// same service; a changed configuration gets a new one.
const instances = new Map<string, Promise<Instance>>();

function configOf(env: BackupEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const name of CONFIG_VARIABLES) {
    const value = (env as Record<string, unknown>)[name];
    if (typeof value === "string") vars[name] = value;
  }
  return vars;
}

function getInstance(env: BackupEnv): Promise<Instance> {
  const vars = configOf(env);
  const id = JSON.stringify(vars);
  let instance = instances.get(id);
  if (!instance) {
    instance = (async () => {
      const config = parseConfig(vars, { maxBytes: WORKERS_MAX_BYTES, bindings: true });
      const logger = consoleLogger(secretsOf(config));
      const runtime = await createWorkerRuntime(logger);
      // Each part in flight costs the isolate its 5 MiB plus copies until the next GC
      // (bench/workerd-memory.ts: 4 in flight peaked 8–20 MiB above 2), and memory, not
      // connections (6 per invocation), is what limits a Worker's database size.
      // With R2_BUCKET the binding is the store (two 5 MiB part buffers, one part in flight).
      const store: BackupStore = config.r2Bucket ? createR2Store(r2Binding(env, config.r2Bucket, "R2_BUCKET"), config.r2Bucket) : createS3Store(config.s3, { queueSize: 2 });
      const notifier = config.notify ? createNotifier(config.notify, { fetch: (input, init) => fetch(input, init), logger, now: () => new Date(), secrets: secretsOf(config) }) : undefined;
      const schedule: Instance["schedule"] = {};
      const nextRun = () => nextTrigger(schedule.cron, vars.SCHEDULE, new Date());
      const fleet = createFleet({ config, runtime, store, source: (db) => createSource(db.source, { s3: config.s3, r2: (name) => r2Binding(env, name, "BACKUP_SOURCE"), sqlite: runtime.sqlite, d1: { ...config.cloudflare, maxDumpBytes: WORKER_D1_DUMP_MAX_BYTES } }) }, { holder: "workers", nextRun, ...(notifier ? { notifier } : {}) });
      return { fleet, app: createApp({ services: fleet.services, logger, corsOrigins: config.corsOrigins, ...(config.apiKey ? { apiKey: config.apiKey } : {}), ...downloadsOf(config) }), logger, schedule, ...(notifier ? { notifier } : {}) };
    })();
    instances.set(id, instance);
    // A configuration that failed is not kept: a fixed one is picked up on the next request.
    instance.catch(() => instances.delete(id));
  }
  return instance;
}

/**
 * The R2 bucket bound as `name`, or a configuration error naming `variable` (never the
 * value: a variable of that name may be a secret).
 */
function r2Binding(env: BackupEnv, name: string, variable: string): R2BucketLike {
  const value = (env as Record<string, unknown>)[name];
  if (value === undefined) {
    throw new BackupError("CONFIG_INVALID", `${variable} names the R2 binding ${name}, but the Worker has none of that name: add it to wrangler.toml ([[r2_buckets]] binding = "${name}", bucket_name = "<bucket>") and deploy again.`, 500);
  }
  if (!isR2Bucket(value)) {
    throw new BackupError("CONFIG_INVALID", `${variable} names ${name}, which is ${typeof value === "string" ? "a variable" : "a binding of another kind"}, not an R2 bucket binding ([[r2_buckets]] in wrangler.toml).`, 500);
  }
  return fitsR2BucketLike(value as unknown as R2Bucket);
}

/** Type test: the Workers runtime's R2Bucket is what the core's R2BucketLike asks for. */
function fitsR2BucketLike(bucket: R2Bucket): R2BucketLike {
  return bucket;
}

function configErrorResponse(err: unknown): Response {
  const e = err instanceof BackupError ? err : new BackupError("INTERNAL", "the worker failed to start", 500);
  return Response.json({ error: { code: e.code, message: e.message } }, { status: 500, headers: { "X-Content-Type-Options": "nosniff" } });
}

const noWaitUntil: ExecutionContextLike = { waitUntil: () => undefined, passThroughOnException: () => undefined };

/** The handler factory: backups for this `env` (the Worker's env, or any object with the variables). */
export function backupHandlers(env: BackupEnv): BackupHandlers {
  return {
    async fetch(request, ctx = noWaitUntil) {
      let app: Instance["app"];
      let notifier: Instance["notifier"];
      try {
        ({ app, notifier } = await getInstance(env));
      } catch (err) {
        console.error(JSON.stringify({ level: "error", msg: "configuration invalid", error: err instanceof Error ? err.message : String(err) }));
        return configErrorResponse(err);
      }
      const response = await app.fetch(request, env, ctx as Parameters<BackupApiApp["fetch"]>[2]);
      // A POST /backups has started its notification by now: it may finish after the response.
      if (notifier) ctx.waitUntil(notifier.idle());
      return response;
    },

    async scheduled(controller, ctx) {
      let fleet: Fleet;
      let logger: Instance["logger"];
      let notifier: Instance["notifier"];
      try {
        let schedule: Instance["schedule"];
        ({ fleet, logger, notifier, schedule } = await getInstance(env));
        schedule.cron = controller.cron;
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
        const runs = await run;
        const failures: BackupError[] = [];
        for (const r of runs) {
          if (r.ok && r.result.ran) logger.info("scheduled backup done", { cron: controller.cron, name: r.name, key: r.result.manifest.key, bytes: r.result.manifest.bytes, durationMs: r.result.manifest.durationMs });
          else if (r.ok && !r.result.ran) logger.info("scheduled backup skipped", { cron: controller.cron, name: r.name, reason: r.result.reason });
          else if (!r.ok && r.error.code === "BACKUP_RUNNING") logger.warn("scheduled backup skipped: one is already running", { cron: controller.cron, name: r.name, reason: r.error.message });
          else if (!r.ok) failures.push(r.error);
        }
        // Throw so that Workers records this invocation as failed (each failure is logged already).
        if (failures.length === 1) throw failures[0];
        if (failures.length > 1) throw new BackupError(failures[0]!.code, `${failures.length} of ${fleet.names.length} backups failed: ${failures.map((e) => e.message).join("; ")}`, failures[0]!.status);
        return runs;
      } finally {
        // Nobody waits for a cron invocation: let it end with the alert delivered (bounded).
        await notifier?.idle();
      }
    },

    async app() {
      return (await getInstance(env)).app;
    },
  };
}

/**
 * The backup API as a Hono app to mount in a Worker's own Hono app:
 * `app.route("/backup", backupApp)` serves /backup/backups, /backup/health, … with the
 * configuration read from the Worker's env (c.env). It must be mounted with `route` at a
 * fixed path (the prefix is taken from the matched route).
 */
export const backupApp = new Hono<{ Bindings: BackupEnv }>();
backupApp.all("*", async (c) => {
  // routePath is the mount path plus "/*" (or "*" at the root): strip it from the URL's path.
  const prefix = c.req.routePath.replace(/\/?\*$/, "");
  const url = new URL(c.req.url);
  if (prefix && (url.pathname === prefix || url.pathname.startsWith(`${prefix}/`))) url.pathname = url.pathname.slice(prefix.length) || "/";
  let ctx: ExecutionContextLike = noWaitUntil;
  try {
    ctx = c.executionCtx;
  } catch {
    // app.request() in tests has no ExecutionContext.
  }
  return backupHandlers(c.env ?? {}).fetch(new Request(url, c.req.raw), ctx);
});

/** A complete Worker (fetch serves the API, scheduled runs the cron backups): `export default createBackupWorker()`. */
export function createBackupWorker() {
  return {
    fetch: (request: Request, env: BackupEnv, ctx: ExecutionContextLike): Promise<Response> => backupHandlers(env).fetch(request, ctx),
    async scheduled(controller: ScheduledControllerLike, env: BackupEnv, ctx: ExecutionContextLike): Promise<void> {
      await backupHandlers(env).scheduled(controller, ctx);
    },
  };
}
