/**
 * The library API for Node programs (`import … from "sqlite-edge-backup"`): back up, list,
 * link, verify and restore with a settings object that has the environment's names and
 * values (docs/configuration.md), validated exactly as the environment is: an invalid
 * value throws a BackupError (code CONFIG_INVALID) naming the setting and what it accepts.
 *
 * The command line (functions/cli.ts) is built on the same client. Heavy modules (the AWS
 * SDK, sql.js, age) are loaded by the operations that need them, not at import.
 */
import { BackupError } from "../../src/errors.js";
import type { Config, ConfigVariable, Env } from "../../src/config.js";
import type { Manifest } from "../../src/backup.js";
import type { BackupEntry, Link } from "../../src/catalog.js";
import type { BackupInfo } from "../../src/backup-info.js";
import type { DeletedBackup } from "../../src/delete-backup.js";
import type { FleetRun } from "../../src/fleet.js";
import { PROGRESS_INTERVAL_MS, throttle, type Logger } from "../../src/log.js";
import type { RestoreResult } from "../../src/restore.js";
import type { VerifyReport } from "../../src/verify.js";
import type { NodeContext } from "../node-context.js";

export { BackupError } from "../../src/errors.js";
export { VERSION } from "../../src/version.js";
export type { Config, ConfigVariable } from "../../src/config.js";
export type { Manifest } from "../../src/backup.js";
export type { BackupEntry, Link } from "../../src/catalog.js";
export type { BackupInfo, Verified } from "../../src/backup-info.js";
export type { DeletedBackup } from "../../src/delete-backup.js";
export type { FleetRun } from "../../src/fleet.js";
export type { Fields, Level, Logger } from "../../src/log.js";
export type { RestoreResult } from "../../src/restore.js";
export type { VerifyReport } from "../../src/verify.js";

/**
 * The settings: the environment variables of the CLI and the Worker, by the same names
 * (BACKUP_SOURCE, S3_BUCKET, MAX_COUNT, …). Numbers and booleans are accepted and passed as
 * their text; unset (undefined) means the default. Nothing is read from process.env: pass
 * `{ ...process.env, … }` for that.
 */
export type BackupSettings = { readonly [K in ConfigVariable]?: string | number | boolean | undefined };

export interface ClientOptions {
  /**
   * Where the log goes: a Logger (JSON lines of the same fields as the CLI's), or false for
   * none. Default: JSON lines on stderr, as the CLI writes them (LOG_LEVEL in process.env).
   */
  logger?: Logger | false;
}

/** With BACKUP_SOURCES: which database an operation is about (required when there are several). */
export interface NameOption {
  name?: string;
}

export interface RestoreRequest extends NameOption {
  /** The database file to create or replace. */
  to: string;
  /** "latest" (the default) or a backup file name as `list` shows it. */
  which?: string;
  /** Replace an existing file at `to`. */
  force?: boolean;
  /** Restore only when nothing is at `to`; otherwise do nothing (the result says `restored: false`). */
  ifMissing?: boolean;
  /** "sqlite" (default): the database file; "sql": the SQL `wrangler d1 execute --file` takes. */
  format?: "sqlite" | "sql";
}

export interface InfoOptions extends NameOption {
  /** Also download and prove the backup now (as `verify`): then `verified` is "now". */
  verify?: boolean;
}

export interface DeleteBackupOptions extends NameOption {
  /** Allow deleting the newest backup (otherwise NEWEST_BACKUP, 409). */
  force?: boolean;
}

export interface BackupClient {
  /** The validated configuration (secrets included: do not log it). */
  readonly config: Config;
  /** The configuration of one database (the only one, or `name` of BACKUP_SOURCES). */
  databaseConfig(name?: string): Promise<Config>;
  /** Back up one database now (the only one, or `name`); resolves to the manifest of the stored backup. */
  backup(options?: NameOption): Promise<Manifest>;
  /** Back up every database in turn (BACKUP_SOURCES); one failing does not stop the others. */
  backupAll(): Promise<FleetRun<Manifest>[]>;
  /** The backups of one database, newest first. */
  list(options?: NameOption): Promise<BackupEntry[]>;
  /** A presigned download link (LINK_TTL_SECONDS) to "latest" (the default) or a backup file. */
  link(which?: string, options?: NameOption): Promise<Link>;
  /** Download and prove a backup (sha256, size, structural check); throws VERIFY_FAILED, SQLITE_CORRUPT, … */
  verify(which?: string, options?: NameOption): Promise<VerifyReport>;
  /** Restore atomically to a file (temp file, proved, renamed over it), as the CLI's `restore`. */
  restore(request: RestoreRequest): Promise<RestoreResult>;
  /** Everything the bucket knows about "latest" (the default) or a backup file, without downloading it (unless `verify`). */
  info(which?: string, options?: InfoOptions): Promise<BackupInfo>;
  /** Delete one backup by file name; the newest only with `force`. Throws INVALID_BACKUP_FILE, BACKUP_NOT_FOUND, NEWEST_BACKUP. */
  deleteBackup(file: string, options?: DeleteBackupOptions): Promise<DeletedBackup>;
  /** Wait for alerts still being delivered (NOTIFY_URL) and release the S3 connections. */
  close(): Promise<void>;
}

/** The settings as an environment: known names only (a typo is an error, not a silent default). */
export async function settingsToEnv(settings: BackupSettings): Promise<Env> {
  if (typeof settings !== "object" || settings === null) throw new BackupError("CONFIG_INVALID", "the settings must be an object of the configuration variables (BACKUP_SOURCE, S3_BUCKET, …).", 400);
  const { CONFIG_VARIABLES } = await import("../../src/config.js");
  const known = new Set<string>(CONFIG_VARIABLES);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings)) {
    if (!known.has(key)) {
      const shown = /^[A-Za-z0-9_]{1,64}$/.test(key) ? `"${key}"` : "a setting";
      throw new BackupError("CONFIG_INVALID", `${shown} is not a configuration variable (the settings are the environment variables: ${CONFIG_VARIABLES.join(", ")}).`, 400);
    }
    if (value === undefined) continue;
    if (typeof value === "string") env[key] = value;
    else if (typeof value === "number" || typeof value === "boolean") env[key] = String(value);
    // Never echo the value: it may be a secret.
    else throw new BackupError("CONFIG_INVALID", `${key} must be a string, a number or a boolean (got ${value === null ? "null" : typeof value}).`, 400);
  }
  return env;
}

/** A client for several operations with one configuration (one S3 client, one sql.js). */
export async function createBackupClient(settings: BackupSettings, options: ClientOptions = {}): Promise<BackupClient> {
  return openBackupClient(await settingsToEnv(settings), options);
}

/**
 * A client from an environment as the CLI reads it (unknown variables ignored). Internal to
 * the package's entry points; programs use createBackupClient.
 */
/** How the CLI logs (functions/cli.ts): JSON lines, or for a person at a terminal; --quiet keeps warnings and errors. */
export interface CliLogOptions {
  logFormat?: "json" | "pretty";
  quiet?: boolean;
}

export async function openBackupClient(env: Env, options: ClientOptions & CliLogOptions = {}): Promise<BackupClient> {
  const [{ parseConfig, configFor, secretsOf }, { NODE_MAX_BYTES }] = await Promise.all([import("../../src/config.js"), import("../node-runtime.js")]);
  const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
  const logger = async (): Promise<Logger> => {
    if (options.logger) return options.logger;
    if (options.logger === false) {
      const { jsonLogger } = await import("../../src/log.js");
      return jsonLogger({ write: () => undefined, level: "error" });
    }
    if (options.logFormat === "pretty") {
      const { prettyLogger } = await import("../pretty-log.js");
      return prettyLogger({ write: (text) => process.stderr.write(text), columns: () => process.stderr.columns, secrets: secretsOf(config), quiet: options.quiet === true });
    }
    const { stderrLogger } = await import("../node-runtime.js");
    return stderrLogger(secretsOf(config), options.quiet ? "warn" : undefined);
  };

  // The whole context (sql.js, the runtime, the services) only for the operations that read
  // or write backups' content; list and link need only the store.
  let context: Promise<NodeContext> | undefined;
  const full = (): Promise<NodeContext> =>
    (context ??= (async () => {
      const { createNodeContext } = await import("../node-context.js");
      return createNodeContext(env, { logger: await logger() });
    })());
  let lightStore: Promise<ReturnType<typeof import("../../src/store/s3.js").createS3Store>> | undefined;
  const store = (): Promise<NodeContext["store"]> =>
    context
      ? context.then((c) => c.store)
      : (lightStore ??= import("../../src/store/s3.js").then(({ createS3Store }) => createS3Store(config.s3)));
  const configOf = async (name: string | undefined): Promise<Config> => {
    // The fleet's choice and errors (NAME_REQUIRED, UNKNOWN_NAME), without building the fleet.
    const { pickName } = await import("../../src/fleet.js");
    const picked = pickName(config.databases.map((d) => d.name), name);
    return configFor(config, config.databases.find((d) => d.name === picked)!);
  };

  const client: BackupClient = {
    config,
    databaseConfig: configOf,
    async backup(opts = {}) {
      const ctx = await full();
      try {
        return await ctx.fleet.pick(opts.name).backup();
      } finally {
        // The alert of this run (success or failure) goes out before the promise settles; bounded.
        await ctx.notifier?.idle();
      }
    },
    async backupAll() {
      const ctx = await full();
      try {
        return await ctx.fleet.runAll((service) => service.backup());
      } finally {
        await ctx.notifier?.idle();
      }
    },
    async list(opts = {}) {
      const [{ listBackups }, c, s] = await Promise.all([import("../../src/catalog.js"), configOf(opts.name), store()]);
      return listBackups(s, c);
    },
    async link(which = "latest", opts = {}) {
      const [{ createLink }, c, s] = await Promise.all([import("../../src/catalog.js"), configOf(opts.name), store()]);
      return createLink(s, c, which, new Date());
    },
    async verify(which = "latest", opts = {}) {
      const [{ resolveBackup }, { verifyBackup }, { ageIdentities }, c, ctx] = await Promise.all([
        import("../../src/catalog.js"),
        import("../../src/verify.js"),
        import("../age-identities.js"),
        configOf(opts.name),
        full(),
      ]);
      const identities = await ageIdentities(c);
      const found = await resolveBackup(ctx.store, c, which);
      const log = ctx.logger.child({ name: c.name, key: found.key });
      const onProgress = throttle<[number, number]>(PROGRESS_INTERVAL_MS, Date.now, ([n, total]) => log.info("verifying", { bytesRead: n, totalBytes: total }));
      const report = await verifyBackup(ctx.store, ctx.runtime, found.key, { maxBytes: c.maxBytes, identities, onProgress: (n, total) => onProgress([n, total]) });
      log.info("backup verified", { bytes: report.bytes, sha256: report.sha256 });
      return report;
    },
    async restore(request) {
      if (typeof request?.to !== "string" || request.to.trim() === "") throw new BackupError("BAD_REQUEST", "restore needs `to`: the database file to create or replace.", 400);
      const [{ restoreBackup }, { ageIdentities }, { nodeRestoreFiles }, { resolve }, c] = await Promise.all([
        import("../../src/restore.js"),
        import("../age-identities.js"),
        import("../node-restore-files.js"),
        import("node:path"),
        configOf(request.name),
      ]);
      const identities = await ageIdentities(c);
      const ctx = await full();
      return restoreBackup(
        { config: c, runtime: ctx.runtime, store: ctx.store, files: nodeRestoreFiles, identities },
        { which: request.which ?? "latest", target: resolve(request.to), force: request.force ?? false, ifMissing: request.ifMissing ?? false, format: request.format ?? "sqlite" },
      );
    },
    async info(which = "latest", opts = {}) {
      const [{ describeBackup, withVerification }, c, s] = await Promise.all([import("../../src/backup-info.js"), configOf(opts.name), store()]);
      const info = await describeBackup(s, c, which);
      // The same object, by its file name: a backup made meanwhile does not change what is verified.
      return opts.verify ? withVerification(info, await client.verify(info.file, opts)) : info;
    },
    async deleteBackup(file, opts = {}) {
      if (typeof file !== "string") throw new BackupError("BAD_REQUEST", "deleteBackup needs the backup's file name (a string, as `list` shows it).", 400);
      const [{ deleteBackup }, c, s, log] = await Promise.all([import("../../src/delete-backup.js"), configOf(opts.name), store(), logger()]);
      return deleteBackup(s, c, file, { force: opts.force === true }, log);
    },
    async close() {
      const ctx = await context?.catch(() => undefined);
      await ctx?.notifier?.idle();
      (ctx?.store as { client?: { destroy(): void } } | undefined)?.client?.destroy();
      (await lightStore?.catch(() => undefined))?.client.destroy();
    },
  };
  return client;
}

/** One operation with its own client, closed afterwards. */
async function once<T>(settings: BackupSettings, options: ClientOptions, work: (client: BackupClient) => Promise<T>): Promise<T> {
  const client = await createBackupClient(settings, options);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

/** Back up one database now (BACKUP_SOURCE; with BACKUP_SOURCES, `name` picks one). */
export function backup(settings: BackupSettings, options: ClientOptions & NameOption = {}): Promise<Manifest> {
  return once(settings, options, (c) => c.backup(options));
}

/** The backups of one database, newest first. */
export function list(settings: BackupSettings, options: ClientOptions & NameOption = {}): Promise<BackupEntry[]> {
  return once(settings, options, (c) => c.list(options));
}

/** A presigned download link to `which` ("latest" by default). */
export function link(settings: BackupSettings, which = "latest", options: ClientOptions & NameOption = {}): Promise<Link> {
  return once(settings, options, (c) => c.link(which, options));
}

/** Download and prove `which` ("latest" by default); throws when anything is wrong. */
export function verify(settings: BackupSettings, which = "latest", options: ClientOptions & NameOption = {}): Promise<VerifyReport> {
  return once(settings, options, (c) => c.verify(which, options));
}

/** Restore `request.which` ("latest" by default) to `request.to`, atomically. */
export function restore(settings: BackupSettings, request: RestoreRequest, options: ClientOptions = {}): Promise<RestoreResult> {
  return once(settings, options, (c) => c.restore(request));
}

/** Everything the bucket knows about `which` ("latest" by default); with `verify`, proved now as well. */
export function info(settings: BackupSettings, which = "latest", options: ClientOptions & InfoOptions = {}): Promise<BackupInfo> {
  return once(settings, options, (c) => c.info(which, options));
}

/** Delete the backup `file` (the newest only with `force`). */
export function deleteBackup(settings: BackupSettings, file: string, options: ClientOptions & DeleteBackupOptions = {}): Promise<DeletedBackup> {
  return once(settings, options, (c) => c.deleteBackup(file, options));
}
