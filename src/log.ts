/**
 * JSON-lines logger. The sink is passed in (stderr on Node, console on Workers). Every line
 * passes through redaction of the configured secrets, as a last line of defence: no code
 * path should log a secret, and if one ever does, it is masked here.
 */
export type Level = "debug" | "info" | "warn" | "error";
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface JsonLoggerOptions {
  write: (line: string, level: Level) => void;
  secrets?: readonly string[];
  level?: Level;
  now?: () => Date;
}

export function redact(text: string, secrets: readonly string[]): string {
  // Longest first, so a secret that contains another is masked whole.
  const ordered = [...new Set(secrets)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  let out = text;
  for (const s of ordered) {
    // JSON escaping (once per level of nesting) could hide a secret with quotes or backslashes.
    let form = s;
    for (let depth = 0; depth < 4; depth++) {
      out = out.split(form).join("[redacted]");
      const escaped = JSON.stringify(form).slice(1, -1);
      if (escaped === form) break;
      form = escaped;
    }
  }
  return out;
}

export function jsonLogger(options: JsonLoggerOptions, base: Fields = {}): Logger {
  const min = LEVELS[options.level ?? "info"];
  const now = options.now ?? (() => new Date());
  const secrets = options.secrets ?? [];
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (LEVELS[level] < min) return;
    // Fields cannot overwrite the line's own time, level and msg.
    const { time: _t, level: _l, msg: _m, ...extra } = { ...base, ...fields };
    const line = JSON.stringify({ time: now().toISOString(), level, msg, ...extra }, errorReplacer);
    options.write(redact(line, secrets), level);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => jsonLogger(options, { ...base, ...fields }),
  };
}

// Errors serialise as {} by default; keep code and message, never the stack.
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { ...(code !== undefined ? { code } : {}), message: value.message };
  }
  return value;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

/** How often long operations log their progress (backup, restore, verify). */
export const PROGRESS_INTERVAL_MS = 2000;

/** Calls `report` at most once per `intervalMs`, plus always for the final value. */
export function throttle<T>(intervalMs: number, now: () => number, report: (value: T) => void): (value: T, final?: boolean) => void {
  let last = -Infinity;
  return (value, final = false) => {
    const t = now();
    if (final || t - last >= intervalMs) {
      last = t;
      report(value);
    }
  };
}
