/**
 * Wires the core for Node from an environment: config, logger (with the config's secrets
 * redacted), runtime, store, and one backup service per database (the fleet).
 */
import { hostname } from "node:os";
import { parseConfig, secretsOf, type Config, type Env } from "../src/config.js";
import type { Logger } from "../src/log.js";
import { createNotifier, type Notifier } from "../src/notify.js";
import type { Runtime } from "../src/runtime.js";
import { createFleet, type Fleet } from "../src/fleet.js";
import type { BackupService, ServiceOptions } from "../src/service.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { createNodeRuntime, NODE_D1_DUMP_MAX_BYTES, NODE_MAX_BYTES, nodeFiles, stderrLogger } from "./node-runtime.js";

/**
 * Parts uploaded at once on Node, as on Workers (was 4): fewer 5 MiB part buffers held by
 * lib-storage. Gzip, not the upload, sets the pace on 2 cores (bench/node-memory.ts).
 */
export const NODE_UPLOAD_QUEUE_SIZE = 2;

export interface NodeContext {
  config: Config;
  logger: Logger;
  runtime: Runtime;
  store: BackupStore;
  /** Every database's service; `service` is the first (with BACKUP_SOURCE, the only) one. */
  fleet: Fleet;
  service: BackupService;
  /** With NOTIFY_URL: await notifier.idle() before exiting, so that the alert goes out. */
  notifier?: Notifier;
}

export async function createNodeContext(env: Env, { logger: givenLogger, ...options }: { logger?: Logger } & ServiceOptions = {}): Promise<NodeContext> {
  const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
  const logger = givenLogger ?? stderrLogger(secretsOf(config));
  const runtime = await createNodeRuntime(logger);
  const store = createS3Store(config.s3, { queueSize: NODE_UPLOAD_QUEUE_SIZE });
  const notifier = config.notify ? createNotifier(config.notify, { fetch: (input, init) => fetch(input, init), logger, now: () => new Date(), secrets: secretsOf(config) }) : undefined;
  const fleet = createFleet(
    { config, runtime, store, source: (db) => createSource(db.source, { files: nodeFiles, s3: config.s3, sqlite: runtime.sqlite, d1: { ...config.cloudflare, maxDumpBytes: NODE_D1_DUMP_MAX_BYTES } }, { readAttempts: config.readAttempts }) },
    { holder: `${hostname()} pid ${process.pid}`, ...(notifier ? { notifier } : {}), ...options },
  );
  return { config, logger, runtime, store, fleet, service: fleet.services[0]!, ...(notifier ? { notifier } : {}) };
}
