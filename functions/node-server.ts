/**
 * The long-running Node process: the HTTP API (the same Hono app as on Workers) on
 * HOST:PORT, and backups on SCHEDULE. Used by `npm start` and `npm run cli -- serve`.
 */
import { serve, type ServerType } from "@hono/node-server";
import { Cron } from "croner";
import { createApp } from "../src/api/app.js";
import type { Env } from "../src/config.js";
import type { Logger } from "../src/log.js";
import { createNodeContext, type NodeContext } from "./node-context.js";

export interface RunningServer {
  ctx: NodeContext;
  url: string;
  stop(): Promise<void>;
}

export async function startServer(env: Env, options: { logger?: Logger } = {}): Promise<RunningServer> {
  let job: Cron | undefined;
  const ctx = await createNodeContext(env, { ...options, nextRun: () => job?.nextRun() ?? undefined });
  const { config, logger, service } = ctx;

  job = new Cron(config.schedule, { timezone: "UTC", protect: true }, async () => {
    try {
      await service.backup();
    } catch {
      // logged by the runner with its code (or skipped: one is already running); next tick retries
    }
  });

  const app = createApp({ service, logger, ...(config.apiKey ? { apiKey: config.apiKey } : {}) });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
    s.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "EADDRINUSE" ? new Error(`port ${config.port} on ${config.host} is already in use: set PORT to another port`) : err),
    );
  });
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`;
  logger.info("server started", { url, schedule: config.schedule, nextRun: job.nextRun()?.toISOString(), api: config.apiKey ? "enabled" : "disabled (API_KEY unset)" });

  return {
    ctx,
    url,
    async stop() {
      job?.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
