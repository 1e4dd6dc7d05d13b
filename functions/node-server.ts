/**
 * The long-running Node process: the HTTP API (the same Hono app as on Workers) on
 * HOST:PORT, and backups on SCHEDULE. Used by `npm start` and `npm run cli -- serve`.
 */
import { serve, type ServerType } from "@hono/node-server";
import { Cron } from "croner";
import { createApp, downloadsOf } from "../src/api/app.js";
import type { Env } from "../src/config.js";
import type { Logger } from "../src/log.js";
import type { FleetRun } from "../src/fleet.js";
import { createNodeContext, type NodeContext } from "./node-context.js";

export interface RunningServer {
  ctx: NodeContext;
  url: string;
  /**
   * The start-up catch-up: the backup owed for the last tick if the bucket has none since
   * it (process down over the tick, or a first start); undefined when caught up or disabled.
   */
  catchUp: Promise<FleetRun[] | undefined>;
  stop(): Promise<void>;
}

export interface ServerOptions {
  logger?: Logger;
  /** Back up at start when the last tick's backup is missing (default true). */
  catchUp?: boolean;
}

export async function startServer(env: Env, options: ServerOptions = {}): Promise<RunningServer> {
  let job: Cron | undefined;
  const ctx = await createNodeContext(env, { ...(options.logger ? { logger: options.logger } : {}), nextRun: () => job?.nextRun() ?? undefined });
  const { config, logger, fleet } = ctx;

  // The window a tick belongs to is the tick's nominal time, not when the callback ran: two
  // processes on the same schedule then name the same window and back it up only once.
  const lastTick = (at: Date) => job?.previousRuns(1, new Date(at.getTime() + 1))[0];
  const runWindow = async (window: Date | undefined): Promise<FleetRun[] | undefined> => {
    if (!window) return undefined;
    // Each database in turn; failures are logged (and alerted) by the runner with their code,
    // and the next tick tries again.
    const runs = await fleet.scheduledAll(window);
    for (const r of runs) {
      if (!r.ok && r.error.code === "BACKUP_RUNNING") logger.info("scheduled backup skipped: one is already running", { name: r.name, window: window.toISOString(), reason: r.error.message });
    }
    return runs;
  };
  job = new Cron(config.schedule, { timezone: "UTC", protect: true }, async () => {
    await runWindow(lastTick(new Date()));
  });

  const app = createApp({ services: fleet.services, logger, corsOrigins: config.corsOrigins, ...(config.apiKey ? { apiKey: config.apiKey } : {}), ...downloadsOf(config) });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
    s.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "EADDRINUSE" ? new Error(`port ${config.port} on ${config.host} is already in use: set PORT to another port`) : err),
    );
  });
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`;
  logger.info("server started", { url, schedule: config.schedule, nextRun: job.nextRun()?.toISOString(), api: config.apiKey ? "enabled" : "disabled (API_KEY unset)" });
  // scheduled() looks at the bucket under the lease: where the last tick is covered, it does nothing.
  const catchUp = options.catchUp === false ? Promise.resolve(undefined) : runWindow(lastTick(new Date()));

  return {
    ctx,
    url,
    catchUp,
    async stop() {
      job?.stop();
      await catchUp;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await ctx.notifier?.idle(); // a run's alert still in flight (bounded)
    },
  };
}
