/**
 * Wires the core for Node from an environment: config, logger (with the config's secrets
 * redacted), runtime, store, source and backup runner.
 */
import { createBackupRunner } from "../src/backup.js";
import { parseConfig, secretsOf, type Config, type Env } from "../src/config.js";
import type { Logger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles, stderrLogger } from "./node-runtime.js";

export interface NodeContext {
  config: Config;
  logger: Logger;
  runtime: Runtime;
  store: BackupStore;
  backup: ReturnType<typeof createBackupRunner>;
}

export async function createNodeContext(env: Env, logger?: Logger): Promise<NodeContext> {
  const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
  const log = logger ?? stderrLogger(secretsOf(config));
  const runtime = await createNodeRuntime(log);
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles, s3: config.s3 });
  return { config, logger: log, runtime, store, backup: createBackupRunner({ config, runtime, store, source }) };
}
