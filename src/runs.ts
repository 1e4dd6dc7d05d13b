/**
 * What the status page shows of past and current runs: a bounded history of finished runs
 * (newest first) and the live progress of the run going on. Both live in the memory of one
 * process (Node) or one isolate (Workers), so they start empty after a restart; the bucket's
 * listing is what survives.
 */

/** How many finished runs a service keeps (per database). */
export const RUN_HISTORY_LIMIT = 50;

/** One finished run: a backup (ok or failed), or a run that did nothing and why. */
export interface RunRecord {
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** `skipped`: nothing was tried (the window was covered, or another instance was running). */
  result: "ok" | "failed" | "skipped";
  /** `api` (POST /backups, the CLI) or `schedule` (cron, the Node start-up catch-up). */
  trigger: "api" | "schedule";
  key?: string;
  bytes?: number;
  gzipBytes?: number;
  sha256?: string;
  /** How the upload was verified (VERIFY) before the run counted it. */
  verified?: "head" | "full";
  unchanged?: boolean;
  /** On failure, why; on success, a warning (pruning old backups failed). */
  error?: { code: string; message: string };
  /** Why a skipped run did nothing. */
  reason?: string;
}

/** The phase of a running backup, and how far it is. Bytes are those of the plain image unless named otherwise. */
export interface RunProgress {
  /** starting (the lease) | reading | checking | hashing | uploading | verifying | pruning */
  phase: RunPhase;
  /** Bytes of the image read so far in this phase. */
  bytesDone?: number;
  /** The image's size, when the source told it. */
  bytesTotal?: number;
  /** Compressed (or encrypted) bytes sent to the store so far. */
  uploadedBytes?: number;
}

export type RunPhase = "starting" | "reading" | "checking" | "hashing" | "uploading" | "verifying" | "pruning";

/** A RunProgress as /status shows it: with when it last changed. */
export type ProgressSnapshot = RunProgress & { updatedAt: string };

/** Newest first, at most `limit`: the record goes in front and the oldest falls off. */
export function pushRun(history: readonly RunRecord[], record: RunRecord, limit = RUN_HISTORY_LIMIT): RunRecord[] {
  return [record, ...history].slice(0, Math.max(0, limit));
}
