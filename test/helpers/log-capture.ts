/**
 * The test run's log capture (issue 6: captured logs contain none of the secrets). In every
 * test process, test/setup/log-capture.ts tees process.stdout, process.stderr and console.*
 * into one file per test file under the run directory; helpers add what never reaches the
 * process's own streams: the tool's JSON log lines that tests keep in arrays (capturedLines),
 * the output of child processes (test/helpers/cli.ts) and workerd's log lines. Helpers also
 * register the secrets they put into configurations (registerSecret); at the end of the run,
 * test/setup/global-log-capture.ts scans every captured file for every registered secret.
 *
 * Outside a vitest run with the capture set up (e.g. bench scripts), capturing does nothing.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join, relative } from "node:path";
import { format } from "node:util";

export const LOGS_DIR = "logs";
export const SECRETS_DIR = "secrets";

/**
 * Shorter values are not registered: too generic to mean anything when found (Swift's test
 * secret is the word "testing"; s3rver's S3RVER is also its access key id, which every signed
 * request and link carries by design).
 */
export const MIN_SECRET_LENGTH = 8;

interface CaptureState {
  logFile: string;
  secretsFile: string;
  installed: boolean;
}

// On globalThis, not in this module: a test process may evaluate its modules more than once,
// and the streams must be wrapped only once per process.
const KEY = Symbol.for("sqlite-edge-backup.log-capture");
const holder = globalThis as unknown as Record<symbol, CaptureState | undefined>;

/** Start capturing this process's output into `dir`, as the output of `testPath`. */
export function startCapture(dir: string, testPath: string | undefined): void {
  const name = (testPath ? relative(process.cwd(), testPath) : `process-${process.pid}`).replace(/[^A-Za-z0-9._-]+/g, "_");
  mkdirSync(join(dir, LOGS_DIR), { recursive: true });
  mkdirSync(join(dir, SECRETS_DIR), { recursive: true });
  const state: CaptureState = {
    logFile: join(dir, LOGS_DIR, `${name}.${process.pid}.log`),
    secretsFile: join(dir, SECRETS_DIR, `${name}.${process.pid}.jsonl`),
    installed: holder[KEY]?.installed ?? false,
  };
  holder[KEY] = state;
  appendFileSync(state.logFile, `[capture] ${testPath ?? "?"} (pid ${process.pid})\n`);
  if (!state.installed) {
    install();
    state.installed = true;
  }
}

/** Add text to the capture of the running test file, marked with where it came from. */
export function capture(source: string, text: string): void {
  const state = holder[KEY];
  if (!state || text === "") return;
  appendFileSync(state.logFile, `[${source}] ${text}${text.endsWith("\n") ? "" : "\n"}`);
}

/** An array for a logger's lines (jsonLogger's write) whose every push is also captured. */
export function capturedLines(source: string): string[] {
  const lines: string[] = [];
  lines.push = (...items: string[]) => {
    for (const item of items) capture(source, item);
    return Array.prototype.push.apply(lines, items);
  };
  return lines;
}

/** Register a secret that must never appear in captured output; returns it. */
export function registerSecret(kind: string, value: string): string {
  const state = holder[KEY];
  if (state && value.length >= MIN_SECRET_LENGTH) appendFileSync(state.secretsFile, `${JSON.stringify({ kind, value })}\n`);
  return value;
}

/**
 * Register the secrets of a tool environment (as passed to the CLI): API_KEY, every value of
 * BACKUP_SOURCE_HEADERS, and S3_SECRET_ACCESS_KEY unless it equals S3_ACCESS_KEY_ID (then it
 * is public: signed URLs carry the access key id in X-Amz-Credential).
 */
export function registerEnvSecrets(env: Record<string, string | undefined>): void {
  if (env.API_KEY) registerSecret("API_KEY", env.API_KEY);
  if (env.AGE_IDENTITY) registerSecret("AGE_IDENTITY", env.AGE_IDENTITY);
  // The whole URL (its origin alone is logged on purpose; the token lives in path or query).
  if (env.NOTIFY_URL) registerSecret("NOTIFY_URL", env.NOTIFY_URL);
  if (env.BACKUP_SOURCES) {
    try {
      const list: unknown = JSON.parse(env.BACKUP_SOURCES);
      for (const entry of Array.isArray(list) ? list : []) {
        const headers = (entry as { headers?: unknown })?.headers;
        if (headers && typeof headers === "object") {
          for (const v of Object.values(headers)) if (typeof v === "string") registerSecret("BACKUP_SOURCES header value", v);
        }
      }
    } catch {
      // not JSON: rejected by the tool without echoing it
    }
  }
  if (env.S3_SECRET_ACCESS_KEY && env.S3_SECRET_ACCESS_KEY !== env.S3_ACCESS_KEY_ID) registerSecret("S3_SECRET_ACCESS_KEY", env.S3_SECRET_ACCESS_KEY);
  if (env.BACKUP_SOURCE_HEADERS) {
    try {
      const headers: unknown = JSON.parse(env.BACKUP_SOURCE_HEADERS);
      if (headers && typeof headers === "object") {
        for (const v of Object.values(headers)) if (typeof v === "string") registerSecret("BACKUP_SOURCE_HEADERS value", v);
      }
    } catch {
      // not JSON: the tool rejects it without echoing it; as a whole it is still a secret
      registerSecret("BACKUP_SOURCE_HEADERS", env.BACKUP_SOURCE_HEADERS);
    }
  }
}

/** The current test file's capture file, if capturing. */
export function captureFile(): string | undefined {
  return holder[KEY]?.logFile;
}

function install(): void {
  for (const [name, stream] of [
    ["stdout", process.stdout],
    ["stderr", process.stderr],
  ] as const) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      capture(name, typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  for (const method of ["log", "info", "warn", "error", "debug", "trace"] as const) {
    const original = console[method].bind(console) as (...args: unknown[]) => void;
    console[method] = (...args: unknown[]) => {
      capture(`console.${method}`, format(...args));
      original(...args);
    };
  }
}
