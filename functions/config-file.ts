/**
 * `--config FILE`: the settings from a JSON file, for people with several databases or who keep
 * their configuration in one place. The keys are the environment variables' names
 * (CONFIG_VARIABLES), plus `databases`, the list BACKUP_SOURCES takes, written as JSON rather
 * than as a string of JSON. The environment overrides the file, so a secret can stay out of it.
 * Values are validated afterwards exactly as the environment's are; an error about a setting
 * that came from the file names the file.
 */
import { readFile } from "node:fs/promises";
import { CONFIG_VARIABLES } from "../src/config.js";
import { BackupError } from "../src/errors.js";

export interface ConfigFile {
  path: string;
  /** The file's settings as an environment (values as strings). */
  env: Record<string, string>;
}

const DATABASES = "databases";

export async function readConfigFile(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (err as Error).message;
    throw new BackupError("CONFIG_INVALID", `--config ${path}: cannot read it (${why}).`, 400);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new BackupError("CONFIG_INVALID", `--config ${path}: not valid JSON (${(err as Error).message}).`, 400);
  }
  return { path, env: configFileEnv(parsed, path) };
}

/** The parsed file → an environment; pure, so that every rule is tested without a file. */
export function configFileEnv(parsed: unknown, path: string): Record<string, string> {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new BackupError("CONFIG_INVALID", `--config ${path}: must hold a JSON object of settings, e.g. {"BACKUP_SOURCE": "/data/app.db", "S3_BUCKET": "backups"}.`, 400);
  }
  const known = new Set<string>(CONFIG_VARIABLES);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key === DATABASES) {
      if (!Array.isArray(value)) throw new BackupError("CONFIG_INVALID", `--config ${path}: "${DATABASES}" must be a list of {"name", "source", "headers"?, "maxCount"?}.`, 400);
      continue;
    }
    if (!known.has(key)) {
      // Never echo more than a plausible name: a misplaced secret could be a key.
      const shown = /^[A-Za-z0-9_]{1,64}$/.test(key) ? `"${key}"` : "a key";
      throw new BackupError("CONFIG_INVALID", `--config ${path}: ${shown} is not a setting (accepted: ${DATABASES}, ${CONFIG_VARIABLES.join(", ")}).`, 400);
    }
    if (typeof value === "string") env[key] = value;
    else if (typeof value === "number" || typeof value === "boolean") env[key] = String(value);
    else if (key === "BACKUP_SOURCES" && Array.isArray(value)) env[key] = JSON.stringify(value);
    // The value is not shown: it may be a secret.
    else throw new BackupError("CONFIG_INVALID", `--config ${path}: ${key} must be a string, a number or a boolean (got ${value === null ? "null" : Array.isArray(value) ? "a list" : typeof value}).`, 400);
  }
  const databases = (parsed as Record<string, unknown>)[DATABASES];
  if (databases !== undefined) {
    if (env.BACKUP_SOURCES !== undefined) throw new BackupError("CONFIG_INVALID", `--config ${path}: give the databases once, as "${DATABASES}" or as BACKUP_SOURCES, not both.`, 400);
    env.BACKUP_SOURCES = JSON.stringify(databases);
  }
  return env;
}

/**
 * The environment a command runs with: the file's settings, overridden by the environment's.
 * BACKUP_SOURCE and BACKUP_SOURCES exclude each other, so one set in the environment replaces
 * the other from the file rather than clashing with it.
 */
export function withConfigFile(file: ConfigFile, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const fromFile = { ...file.env };
  if (env.BACKUP_SOURCE !== undefined || env.BACKUP_SOURCES !== undefined) {
    delete fromFile.BACKUP_SOURCE;
    delete fromFile.BACKUP_SOURCES;
    if (env.BACKUP_SOURCES !== undefined) delete fromFile.BACKUP_NAME;
  }
  return { ...fromFile, ...env };
}

/** A CONFIG_INVALID about a setting the file gave (and the environment did not override) names the file. */
export function blameConfigFile(err: unknown, file: ConfigFile, env: NodeJS.ProcessEnv): unknown {
  if (!(err instanceof BackupError) || err.code !== "CONFIG_INVALID") return err;
  const culprit = Object.keys(file.env).find((key) => env[key] === undefined && new RegExp(`\\b${key}\\b`).test(err.message));
  if (!culprit) return err;
  return new BackupError("CONFIG_INVALID", `--config ${file.path}: ${err.message}`, err.status, { cause: err });
}
