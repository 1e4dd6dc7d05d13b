/**
 * `npm run dev:local`: the Worker as `wrangler deploy` would upload it, served by workerd
 * through Miniflare on http://127.0.0.1:$PORT (default 8787), without an inspector.
 *
 * Why not `wrangler dev`: wrangler attaches its inspector proxy to the Worker, and workerd
 * then reports a DevTools `Network.dataReceived` event for every 4 KiB of every fetch the
 * Worker makes. Reading a 20/40/60 MiB database grew workerd by 347/640/977 MiB, a 90 MiB one
 * was read at ~0.7 MB/s, and with DevTools open wrangler itself ran out of heap. A deployed
 * Worker pays none of that, and neither does this: no inspector port, so no events.
 *
 * What it does:
 * - builds the bundle with `wrangler deploy --dry-run --outdir .wrangler/dist` (as
 *   `npm run build:worker`: the [alias] table and the sql.js .wasm module included);
 * - binds what `wrangler dev` binds: wrangler.toml's [vars] (and any other bindings it
 *   declares) and `.dev.vars` beside it (or `.env`), read by wrangler's own config reader;
 * - serves the API and fires the cron trigger on `GET /__scheduled?cron=0+3+*+*+*` (as
 *   `wrangler dev --test-scheduled`) or `GET /cdn-cgi/handler/scheduled?cron=…` (Miniflare's;
 *   `wrangler dev` has it too): 200 when the scheduled handler succeeded, 500 when it threw;
 * - prints the Worker's log lines and one line per request; Ctrl-C / SIGTERM disposes workerd.
 *
 * No hot reload and no DevTools: restart it after a code change. No Cloudflare account is
 * used; `wrangler deploy --dry-run` builds locally.
 *
 * Tooling, not a runtime adapter, hence scripts/ and not functions/: nothing deployed runs
 * it; it hosts the deployed adapter (functions/worker.ts, bundled) the way Cloudflare would.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Log, LogLevel, Miniflare } from "miniflare";

export const REPO_ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** The Worker's name in workerd (wrangler.toml `name` is only for display here). */
const WORKER = "worker";

/**
 * Routed only `/__scheduled*`: calls the Worker's scheduled handler over a service binding,
 * as wrangler's --test-scheduled middleware does (which `wrangler deploy` does not bundle).
 * Every other request goes straight to the Worker, not through this.
 */
const SCHEDULED_TRIGGER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== "/__scheduled") return env.WORKER.fetch(request);
    const time = url.searchParams.get("time");
    const result = await env.WORKER.scheduled({ cron: url.searchParams.get("cron") ?? "", ...(time ? { scheduledTime: new Date(Number(time)) } : {}) });
    return new Response("scheduled: " + result.outcome + "\\n", { status: result.outcome === "ok" ? 200 : 500, headers: { "Content-Type": "text/plain" } });
  },
};
`;

export interface Bundle {
  /** The directory wrangler wrote (the modules root). */
  dir: string;
  /** The bundled main module in it. */
  scriptPath: string;
}

export interface DevLocalOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default $PORT, else 8787; 0 picks a free port. */
  port?: number;
  /** wrangler.toml: what is built, and where [vars] and .dev.vars are read. Default: the repository's. */
  configPath?: string;
  /** A bundle built already (tests); without it the Worker is built into `outdir`. */
  bundle?: Bundle;
  /** Default .wrangler/dist beside wrangler.toml; emptied first. */
  outdir?: string;
  /** Variables over wrangler.toml [vars] and .dev.vars (tests). */
  vars?: Record<string, string>;
  /** The Worker's console lines; default: info and below to stdout, warn and error to stderr. */
  onWorkerLog?: (line: { level: string; message: string }) => void;
  /** Miniflare's own messages (ready, one line per request); default INFO. */
  logLevel?: LogLevel;
}

export interface DevLocal {
  /** Where it listens, e.g. http://127.0.0.1:8787/ */
  url: URL;
  mf: Miniflare;
  /** Fire the cron trigger (as Cloudflare would); resolves with workerd's outcome ("ok", "exception", …). */
  scheduled(cron?: string, scheduledTime?: Date): Promise<{ outcome: string; noRetry: boolean }>;
  /** Stop workerd. */
  close(): Promise<void>;
}

/** `wrangler deploy --dry-run --outdir` (a local build, no account): the bundle as it would be uploaded. */
export async function buildBundle(configPath: string, outdir: string, main: string): Promise<Bundle> {
  await rm(outdir, { recursive: true, force: true });
  await new Promise<void>((resolvePromise, reject) => {
    execFile(
      "npx",
      ["wrangler", "deploy", "--dry-run", "--config", configPath, "--outdir", outdir],
      { cwd: dirname(configPath), env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`wrangler build failed:\n${stdout}\n${stderr}`, { cause: err })) : resolvePromise()),
    );
  });
  // wrangler names the bundle after `main`: functions/worker.ts → worker.js.
  const scriptPath = join(outdir, `${basename(main, extname(main))}.js`);
  if (!existsSync(scriptPath)) throw new Error(`wrangler wrote no ${basename(scriptPath)} in ${outdir}`);
  return { dir: outdir, scriptPath };
}

function defaultPort(): number {
  const raw = process.env.PORT;
  if (raw === undefined || raw === "") return 8787;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number (0-65535), got "${raw}"`);
  return port;
}

function printWorkerLog({ level, message }: { level: string; message: string }): void {
  (level === "warn" || level === "error" ? process.stderr : process.stdout).write(`${message}\n`);
}

export async function startDevLocal(options: DevLocalOptions = {}): Promise<DevLocal> {
  const configPath = resolve(options.configPath ?? join(REPO_ROOT, "wrangler.toml"));
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? defaultPort();
  const log = new Log(options.logLevel ?? LogLevel.INFO, { prefix: "dev:local" });

  // wrangler's own reader: [vars] (strings and JSON), .dev.vars beside wrangler.toml (or .env),
  // any other bindings wrangler.toml declares, the compatibility date and flags, the module rules.
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath);
  if (!main) throw new Error(`${configPath} has no main`);
  let bundle = options.bundle;
  if (!bundle) {
    const outdir = resolve(options.outdir ?? join(dirname(configPath), ".wrangler", "dist"));
    const started = Date.now();
    bundle = await buildBundle(configPath, outdir, main);
    log.info(`built ${relative(process.cwd(), bundle.scriptPath) || bundle.scriptPath} (wrangler deploy --dry-run) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  const bindings = { ...(workerOptions.bindings as Record<string, unknown> | undefined), ...options.vars };
  const mf = new Miniflare({
    host,
    port,
    // No inspectorPort: no inspector, so workerd reports no DevTools events for the fetches.
    // No request.cf from workers.cloudflare.com (the Worker does not read it): Miniflare's placeholder.
    cf: false,
    log,
    handleStructuredLogs: options.onWorkerLog ?? printWorkerLog,
    // GET /cdn-cgi/handler/scheduled?cron=… fires the scheduled handler.
    unsafeTriggerHandlers: true,
    workers: [
      {
        // The first worker gets every request no route claims.
        ...workerOptions,
        name: WORKER,
        bindings: bindings as Record<string, string>,
        scriptPath: bundle.scriptPath,
        modulesRoot: bundle.dir,
        modules: true,
      },
      {
        name: "scheduled-trigger",
        modules: true,
        script: SCHEDULED_TRIGGER,
        compatibilityDate: workerOptions.compatibilityDate ?? "2026-04-20",
        // Fetcher.scheduled() on a service binding.
        compatibilityFlags: ["service_binding_extra_handlers"],
        routes: ["*/__scheduled*"],
        serviceBindings: { WORKER },
      },
    ],
  });
  let url: URL;
  try {
    url = await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => undefined);
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    url,
    mf,
    async scheduled(cron = "", scheduledTime) {
      const worker = await mf.getWorker(WORKER);
      return (await worker.scheduled({ cron, ...(scheduledTime ? { scheduledTime } : {}) })) as unknown as { outcome: string; noRetry: boolean };
    },
    close: () => (closing ??= mf.dispose()),
  };
}

async function main(): Promise<void> {
  const started = await startDevLocal();
  const base = started.url.href.replace(/\/$/, "");
  console.error(
    [
      `dev:local: the built Worker in workerd (Miniflare, no inspector) on ${base}`,
      `  curl ${base}/health`,
      `  curl -X POST -H "Authorization: Bearer $API_KEY" ${base}/backups`,
      `  curl '${base}/__scheduled?cron=0+3+*+*+*'      # the cron trigger`,
      `Ctrl-C stops it. No hot reload: restart after a change.`,
    ].join("\n"),
  );
  // Miniflare registers its own SIGINT/SIGTERM hook when it starts workerd: it kills workerd,
  // removes its temporary directory and exits (130/143), right after this listener. Should it
  // not, this one disposes Miniflare itself; a second signal exits at once.
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(1);
    console.error(`dev:local: ${signal}, stopping workerd`);
    started.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.prependListener("SIGINT", stop);
  process.prependListener("SIGTERM", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
