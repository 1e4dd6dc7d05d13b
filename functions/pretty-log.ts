/**
 * The log for a person at a terminal (the CLI's default when stderr is a TTY; JSON lines
 * otherwise, or with --log-format json). Progress messages (bytes of a total) redraw one line
 * in place: phase, MiB done of the total, percent, MiB/s and time left. Every other message is
 * one short line; a finished backup, restore or verify ends with a summary. --quiet keeps
 * warnings and errors only. Secrets are masked as in the JSON log.
 */
import { redact, type Fields, type Level, type Logger } from "../src/log.js";

export interface PrettyLoggerOptions {
  write: (text: string) => void;
  /** The terminal's width (progress lines are cut to it); default 100. */
  columns?: () => number | undefined;
  secrets?: readonly string[];
  quiet?: boolean;
  level?: Level;
  /** Milliseconds, for rates and times left. */
  now?: () => number;
}

const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const MiB = 1024 * 1024;

/** Progress messages, by the phase they draw. */
const PHASES: Record<string, string> = {
  hashing: "hashing",
  streaming: "backing up",
  "reading source": "reading",
  uploading: "uploading",
  restoring: "restoring",
  verifying: "verifying",
};

/** Fields not worth a person's screen in a one-line message. */
const HIDDEN = new Set(["time", "level", "msg", "store", "attempt", "check", "name", "key", "sha256"]);

export function prettyLogger(options: PrettyLoggerOptions, base: Fields = {}): Logger {
  return make(options, base, { open: false, phase: undefined });
}

interface Shared {
  /** A progress line is on screen without its newline. */
  open: boolean;
  /** The phase drawn, when it started and from how many bytes (for the rate). */
  phase: { name: string; at: number; from: number } | undefined;
}

function make(options: PrettyLoggerOptions, base: Fields, shared: Shared): Logger {
  const min = LEVELS[options.quiet ? "warn" : (options.level ?? "info")];
  const now = options.now ?? Date.now;
  const secrets = options.secrets ?? [];
  const out = (text: string) => options.write(redact(text, secrets));
  const clear = () => {
    if (shared.open) out("\r\x1b[2K");
    shared.open = false;
  };

  const emit = (level: Level, msg: string, fields: Fields = {}) => {
    if (LEVELS[level] < min) return;
    const all = { ...base, ...fields };
    const phase = PHASES[msg];
    const done = num(all.bytesRead) ?? num(all.uploadedBytes);
    const total = num(all.totalBytes) ?? num(all.bytes);
    if (phase && level === "info" && done !== undefined) return drawProgress(phase, done, total);
    clear();
    const summary = level === "info" ? summarize(msg, all) : undefined;
    if (summary) return out(`${summary}\n`);
    const mark = level === "error" ? "✗ " : level === "warn" ? "! " : "  ";
    out(`${mark}${msg}${describe(all)}\n`);
  };

  const drawProgress = (phase: string, done: number, total: number | undefined) => {
    const t = now();
    if (shared.phase?.name !== phase) shared.phase = { name: phase, at: t, from: done };
    const seconds = (t - shared.phase.at) / 1000;
    const rate = seconds > 0 ? (done - shared.phase.from) / MiB / seconds : undefined;
    const parts = [`${phase.padEnd(10)}`, total ? `${mib(done)} / ${mib(total)} MiB  ${String(Math.floor((done / total) * 100)).padStart(3)} %` : `${mib(done)} MiB`];
    if (rate !== undefined && rate > 0) {
      parts.push(`${rate.toFixed(1)} MiB/s`);
      if (total && total > done) parts.push(`${duration((total - done) / MiB / rate)} left`);
    }
    // A pseudo-terminal without a size reports 0 columns.
    const width = Math.max(20, (options.columns?.() || 100) - 1);
    out(`\r\x1b[2K${parts.join("  ").slice(0, width)}`);
    shared.open = true;
  };

  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => make(options, { ...base, ...fields }, shared),
  };
}

/** The closing line of a backup, restore or verify, for a person. */
function summarize(msg: string, f: Fields): string | undefined {
  const name = typeof f.name === "string" ? ` ${f.name}` : "";
  const ms = num(f.durationMs);
  const took = ms !== undefined ? ` in ${duration(ms / 1000)}` : "";
  const bytes = num(f.bytes);
  switch (msg) {
    case "backup finished": {
      const gz = num(f.gzipBytes);
      const pruned = num(f.pruned);
      const file = typeof f.key === "string" ? ` as ${f.key.slice(f.key.lastIndexOf("/") + 1)}` : "";
      return `✓ backed up${name}${file}: ${bytes !== undefined ? `${mib(bytes)} MiB` : "the database"}${gz !== undefined ? ` → ${mib(gz)} MiB stored` : ""}${took}${pruned ? `, ${pruned} old backup${pruned === 1 ? "" : "s"} pruned` : ""}`;
    }
    case "backup verified":
      return `✓ verified${name}: ${bytes !== undefined ? `${mib(bytes)} MiB` : "the database"}, sha256 and structure as stored`;
    case "restored":
      return `✓ restored${name}: ${bytes !== undefined ? `${mib(bytes)} MiB` : "the database"} to ${String(f.target)}${f.replaced ? " (replaced the existing file)" : ""}`;
    default:
      return undefined;
  }
}

function describe(f: Fields): string {
  const shown = Object.entries(f)
    .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined && (typeof v !== "object" || v === null || v instanceof Error))
    .map(([k, v]) => `${k}=${v instanceof Error ? v.message : typeof v === "number" && /bytes$/i.test(k) ? `${mib(v)}MiB` : String(v)}`);
  const error = f.error;
  if (error && typeof error === "object" && !(error instanceof Error) && "message" in error) shown.push(`error=${String((error as { message: unknown }).message)}`);
  return shown.length ? `  (${shown.join(", ")})` : "";
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${String(Math.round(seconds - m * 60)).padStart(2, "0")} s`;
}
