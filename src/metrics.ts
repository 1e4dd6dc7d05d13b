/**
 * Run outcomes as Prometheus metrics (text exposition format 0.0.4), for GET /metrics.
 * Pure: the service records starts and finishes, the route renders the text.
 *
 * Values live in this process (Node) or isolate (Workers): counters start at 0 with it. On
 * Workers every isolate counts its own runs, so for alerting use the last-success timestamp,
 * which is seeded from the newest backup in the bucket (seedLastSuccess) and so holds across
 * isolates and restarts.
 */
import type { RunOutcome } from "./notify.js";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface RunMetrics {
  started(name: string): void;
  finished(name: string, run: RunOutcome): void;
  /** A run that did nothing: another instance held the lease, or the schedule window was already covered. */
  skipped(name: string): void;
  /** A success older than this process (the newest stored backup); ignored once a run succeeded here. */
  seedLastSuccess(name: string, at: Date): void;
  /** A backup deleted on request (DELETE /backups/{file}); retention's prunes are not counted. */
  deleted(name: string): void;
  render(): string;
}

interface State {
  success: number;
  failure: number;
  skipped: number;
  deleted: number;
  running: boolean;
  lastRun?: number;
  lastSuccess?: number;
  /** True when lastSuccess was observed by this process, not seeded. */
  succeededHere: boolean;
  lastDuration?: number;
  lastBytes?: number;
  lastGzipBytes?: number;
}

type Family = { name: string; type: "counter" | "gauge"; help: string; samples: (s: State) => [Record<string, string>, number | undefined][] };

const FAMILIES: Family[] = [
  {
    name: "sqlite_backup_runs_total",
    type: "counter",
    help: "Backup runs finished by this process or isolate, by result (skipped: another instance held the lease or had covered the schedule window).",
    samples: (s) => [
      [{ result: "success" }, s.success],
      [{ result: "failure" }, s.failure],
      [{ result: "skipped" }, s.skipped],
    ],
  },
  {
    name: "sqlite_backup_last_success_timestamp_seconds",
    type: "gauge",
    help: "End of the last successful backup (Unix time); before the first one here, the newest backup in the bucket.",
    samples: (s) => [[{}, s.lastSuccess]],
  },
  { name: "sqlite_backup_last_run_timestamp_seconds", type: "gauge", help: "End of the last backup run, successful or not (Unix time).", samples: (s) => [[{}, s.lastRun]] },
  { name: "sqlite_backup_last_duration_seconds", type: "gauge", help: "Duration of the last backup run, successful or not.", samples: (s) => [[{}, s.lastDuration]] },
  { name: "sqlite_backup_last_bytes", type: "gauge", help: "Uncompressed image size of the last successful backup.", samples: (s) => [[{}, s.lastBytes]] },
  { name: "sqlite_backup_last_compressed_bytes", type: "gauge", help: "Stored (gzip) size of the last successful backup.", samples: (s) => [[{}, s.lastGzipBytes]] },
  { name: "sqlite_backup_running", type: "gauge", help: "1 while a backup runs in this process or isolate, else 0.", samples: (s) => [[{}, s.running ? 1 : 0]] },
  {
    name: "sqlite_backup_deleted_total",
    type: "counter",
    help: "Backups deleted on request (DELETE /backups/{file}) by this process or isolate; retention's prunes are not counted.",
    samples: (s) => [[{}, s.deleted]],
  },
];

/** `names`: backup names to report (with zero counts) before their first run. */
export function createRunMetrics(names: readonly string[] = []): RunMetrics {
  const states = new Map<string, State>();
  const state = (name: string): State => {
    let s = states.get(name);
    if (!s) states.set(name, (s = { success: 0, failure: 0, skipped: 0, deleted: 0, running: false, succeededHere: false }));
    return s;
  };
  for (const n of names) state(n);

  return {
    started(name) {
      state(name).running = true;
    },
    finished(name, run) {
      const s = state(name);
      const end = Date.parse(run.finishedAt) / 1000;
      s.running = false;
      s.lastRun = end;
      s.lastDuration = run.durationMs / 1000;
      if (!run.ok) {
        s.failure++;
        return;
      }
      s.success++;
      s.lastSuccess = end;
      s.succeededHere = true;
      if (run.bytes !== undefined) s.lastBytes = run.bytes;
      if (run.gzipBytes !== undefined) s.lastGzipBytes = run.gzipBytes;
    },
    skipped(name) {
      const s = state(name);
      s.running = false;
      s.skipped++;
    },
    seedLastSuccess(name, at) {
      const s = state(name);
      if (!s.succeededHere) s.lastSuccess = at.getTime() / 1000;
    },
    deleted(name) {
      state(name).deleted++;
    },
    render() {
      const lines: string[] = [];
      for (const f of FAMILIES) {
        lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
        for (const [name, s] of states) {
          for (const [labels, value] of f.samples(s)) {
            if (value === undefined) continue; // unknown yet: no sample rather than a misleading 0
            lines.push(`${f.name}${formatLabels({ name, ...labels })} ${formatValue(value)}`);
          }
        }
      }
      return `${lines.join("\n")}\n`;
    },
  };
}

/** Label values escape backslash, double quote and line feed (exposition format 0.0.4). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatLabels(labels: Record<string, string>): string {
  return `{${Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  return String(v);
}
