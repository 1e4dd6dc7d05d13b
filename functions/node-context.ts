/**
 * Wires the core for Node from an environment: config, logger (with the config's secrets
 * redacted), runtime, store, source and the backup service.
 */
import { parseConfig, secretsOf, type Config, type Env } from "../src/config.js";
import type { Logger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createBackupService, type BackupService, type ServiceOptions } from "../src/service.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles, stderrLogger } from "./node-runtime.js";

export interface NodeContext {
  config: Config;
  logger: Logger;
  runtime: Runtime;
  store: BackupStore;
  service: BackupService;
}

export async function createNodeContext(env: Env, options: { logger?: Logger } & ServiceOptions = {}): Promise<NodeContext> {
  const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
  const logger = options.logger ?? stderrLogger(secretsOf(config));
  const runtime = await createNodeRuntime(logger);
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles, s3: config.s3 }, { readAttempts: config.readAttempts });
  const service = createBackupService({ config, runtime, store, source }, options.nextRun ? { nextRun: options.nextRun } : {});
  return { config, logger, runtime, store, service };
}
