/**
 * The operations both runtimes expose (HTTP API, cron, CLI), with one backup at a time:
 * in this instance by a flag, across instances by the lease of src/lock.ts.
 */
import { createBackupRunner, type BackupDeps, type Manifest } from "./backup.js";
import { describeBackup, type BackupInfo } from "./backup-info.js";
import { createLink, describeBackups, listBackups, openBackup, type BackupEntry, type DescribedEntry, type Download, type Link } from "./catalog.js";
import { deleteBackup, type DeletedBackup, type DeleteOptions } from "./delete-backup.js";
import type { Config, LinkMode } from "./config.js";
import { asBackupError, BackupError } from "./errors.js";
import { parseKey } from "./keys.js";
import type { RangeSpec } from "./http-range.js";
import { createLinkSigner, linkModeFor } from "./links.js";
import { createLock, DEFAULT_SETTLE_MS, type HeldLease } from "./lock.js";
import { createRunMetrics, type RunMetrics } from "./metrics.js";
import type { Notifier, NotifyResult, RunOutcome } from "./notify.js";
import { pushRun, type ProgressSnapshot, type RunProgress, type RunRecord } from "./runs.js";
import { alreadyBackedUp } from "./schedule.js";

export interface LastRun extends RunOutcome {
  pruned?: number;
  /** SKIP_UNCHANGED: nothing was uploaded; `key` is the existing identical backup. */
  unchanged?: boolean;
}

export interface Status {
  name: string;
  running: boolean;
  /** Start time of the running backup. */
  runningSince?: string;
  /** The running backup's phase and bytes (only while one runs here). */
  progress?: ProgressSnapshot;
  lastRun: LastRun | null;
  nextRun: string | null;
  /** The last NOTIFY_URL delivery (only when NOTIFY_URL is set). */
  lastNotify?: NotifyResult | null;
  /** Finished runs of this process or isolate, newest first (at most RUN_HISTORY_LIMIT). */
  runs: RunRecord[];
}

/** What a scheduled trigger did: backed up, or found the window already covered. */
export type ScheduledResult = { ran: true; manifest: Manifest } | { ran: false; reason: string; newest?: string };

export interface BackupService {
  /** BACKUP_NAME, or the BACKUP_SOURCES entry's name. */
  readonly name: string;
  backup(): Promise<Manifest>;
  /**
   * The backup for the schedule window starting at `scheduledAt`. Another instance (a second
   * process, an overlapping isolate) may already have made it: then nothing is done.
   */
  scheduled(scheduledAt: Date): Promise<ScheduledResult>;
  list(): Promise<BackupEntry[]>;
  /** list() with each backup's metadata (a HEAD each) and, for those made here, how they were verified. */
  listDetails(): Promise<DescribedEntry[]>;
  /** What the bucket knows about one backup ("latest" or a file name), from its listing and HEAD. */
  info(which: string): Promise<BackupInfo>;
  /** Delete one backup by file name (the newest only with `force`); logged and counted in metrics. */
  deleteBackup(file: string, options?: DeleteOptions): Promise<DeletedBackup>;
  /**
   * A download link to `which` ("latest" or a file): presigned by the store, or with
   * LINK_MODE=worker a signed /download URL starting with LINK_BASE_URL, else `origin` (the
   * origin of the request that asked for it).
   */
  link(which: string, options?: { origin?: string }): Promise<Link>;
  /** LINK_MODE as it applies to this store (configured, or the store's default). */
  readonly linkMode: LinkMode;
  /** Backup `file` for GET /download/{file} (the link's signature is checked by the caller). */
  open(file: string, request: { range?: RangeSpec | undefined; ifRange?: string | undefined; headersOnly?: boolean }): Promise<Download>;
  status(): Status;
  /** Run counts and last-run gauges for GET /metrics. */
  readonly metrics: RunMetrics;
}

export interface ServiceOptions {
  /** When the scheduler fires next (Node scheduler or the Workers cron), if known. */
  nextRun?: () => Date | undefined;
  /** Where this instance runs ("host pid 123", "workers"), written into its leases. */
  holder?: string;
  /** Pause before reading back a best-effort lease write (tests shorten it). */
  lockSettleMs?: number;
  /** Where runs are counted (default: a registry of this service alone). */
  metrics?: RunMetrics;
  /** Reports finished runs to NOTIFY_URL in the background; never throws. */
  notifier?: Notifier;
}

type Trigger = RunRecord["trigger"];

type ServiceConfig = BackupDeps["config"] & Pick<Config, "linkTtlSeconds" | "lock" | "linkMode" | "linkSecret" | "linkBaseUrl">;

/** No lease for a delete: see src/delete-backup.ts for why a concurrent run does not matter. */
async function deleteAndCount(deps: Pick<BackupDeps, "store" | "runtime"> & { config: ServiceConfig }, metrics: RunMetrics, file: string, options: DeleteOptions): Promise<DeletedBackup> {
  const deleted = await deleteBackup(deps.store, deps.config, file, options, deps.runtime.logger);
  metrics.deleted(deps.config.name);
  return deleted;
}

export function createBackupService(deps: BackupDeps & { config: ServiceConfig }, options: ServiceOptions = {}): BackupService {
  const runner = createBackupRunner(deps);
  const { config, runtime, store } = deps;
  // At start: a mode that cannot work (worker without LINK_SECRET) is a configuration error.
  const linkMode = linkModeFor(config, store);
  // Without LINK_SECRET a store that cannot presign has no links (its presign says why).
  const signer = linkMode === "worker" && config.linkSecret ? createLinkSigner(config.linkSecret) : undefined;
  const lock = createLock({
    store,
    prefix: config.s3.prefix,
    name: config.name,
    mode: config.lock.mode,
    ttlMs: config.lock.ttlMs,
    settleMs: options.lockSettleMs ?? DEFAULT_SETTLE_MS,
    owner: Array.from({ length: 4 }, () => Math.floor(runtime.random() * 0x10000).toString(16).padStart(4, "0")).join(""),
    holder: options.holder ?? "unknown",
    now: () => runtime.now(),
    logger: runtime.logger.child({ name: config.name }),
  });
  const metrics = options.metrics ?? createRunMetrics([config.name]);
  let runningSince: Date | undefined;
  let lastRun: LastRun | null = null;
  let runs: RunRecord[] = [];
  let progress: ProgressSnapshot | undefined;
  const onProgress = (p: RunProgress) => {
    progress = { ...p, updatedAt: runtime.now().toISOString() };
  };

  /** The outcome of a run: status, history, metrics, alert. */
  function record(started: Date, trigger: Trigger, fields: Partial<LastRun> & { ok: boolean }, more: Pick<RunRecord, "sha256" | "verified"> = {}): void {
    const finished = runtime.now();
    lastRun = { startedAt: started.toISOString(), finishedAt: finished.toISOString(), durationMs: finished.getTime() - started.getTime(), ...fields };
    const { ok, pruned: _pruned, ...rest } = lastRun;
    runs = pushRun(runs, { ...rest, result: ok ? "ok" : "failed", trigger, ...more });
    metrics.finished(config.name, lastRun);
    options.notifier?.notify(config.name, lastRun);
  }
  /** A run that did nothing: in the history with its reason, never as lastRun (not a failure, not a backup). */
  function skipped(started: Date, trigger: Trigger, reason: string): void {
    const finished = runtime.now();
    runs = pushRun(runs, { startedAt: started.toISOString(), finishedAt: finished.toISOString(), durationMs: finished.getTime() - started.getTime(), result: "skipped", trigger, reason });
    metrics.skipped(config.name);
  }
  const failed = (started: Date, trigger: Trigger, err: unknown) => {
    const e = asBackupError(err);
    // Another instance running is not a failure of this one; a store that cannot be reached is.
    if (e.code !== "BACKUP_RUNNING") record(started, trigger, { ok: false, error: { code: e.code, message: e.message } });
    else skipped(started, trigger, e.message);
    return e;
  };

  /**
   * Single flight here, the lease across instances, then `work` while both are held. Every
   * failure on the way (the lease's store requests included) is recorded as the run's outcome.
   */
  async function exclusive<T>(trigger: Trigger, work: (lease: HeldLease, started: Date) => Promise<T>): Promise<T> {
    if (runningSince) {
      throw new BackupError("BACKUP_RUNNING", `a backup of "${config.name}" started at ${runningSince.toISOString()} is still running; try again when it has finished.`, 409);
    }
    const started = runtime.now();
    runningSince = started;
    onProgress({ phase: "starting" });
    metrics.started(config.name);
    try {
      const lease = await lock.acquire().catch((err: unknown) => {
        throw failed(started, trigger, err);
      });
      try {
        return await work(lease, started);
      } finally {
        await lease.release();
      }
    } finally {
      runningSince = undefined;
      progress = undefined;
    }
  }

  async function run(lease: HeldLease, started: Date, trigger: Trigger): Promise<Manifest> {
    try {
      const m = await runner.run({ leaseHeld: lease.held, onProgress });
      record(
        started,
        trigger,
        { ok: true, key: m.key, bytes: m.bytes, gzipBytes: m.gzipBytes, pruned: m.pruned.length, ...(m.unchanged ? { unchanged: true } : {}), ...(m.pruneError ? { error: { code: "PRUNE_FAILED", message: m.pruneError } } : {}) },
        { sha256: m.sha256, verified: m.verified },
      );
      return m;
    } catch (err) {
      throw failed(started, trigger, err);
    }
  }

  return {
    name: config.name,
    backup: () => exclusive("api", (lease, started) => run(lease, started, "api")),
    scheduled: (scheduledAt) =>
      exclusive("schedule", async (lease, started): Promise<ScheduledResult> => {
        // Under the lease, so that an instance that just finished this window's backup is seen.
        const newest = (await listBackups(store, config).catch((err: unknown) => Promise.reject(failed(started, "schedule", err))))[0];
        const newestTime = newest && parseKey(config.s3.prefix, config.name, newest.key)?.time;
        if (newest && alreadyBackedUp(newestTime, scheduledAt)) {
          const reason = `the backup for the window starting ${scheduledAt.toISOString()} exists already (${newest.file})`;
          runtime.logger.info("scheduled backup skipped", { name: config.name, reason });
          skipped(started, "schedule", reason);
          return { ran: false, reason, newest: newest.key };
        }
        return { ran: true, manifest: await run(lease, started, "schedule") };
      }),
    list: () => listBackups(store, config),
    async listDetails() {
      const described = await describeBackups(store, await listBackups(store, config));
      const verified = new Map(runs.flatMap((r) => (r.result === "ok" && r.key && r.verified ? [[r.key, r.verified] as const] : [])));
      return described.map((b) => {
        const v = verified.get(b.key);
        return v ? { ...b, verified: v } : b;
      });
    },
    info: (which) => describeBackup(store, config, which),
    deleteBackup: (file, opts = {}) => deleteAndCount(deps, metrics, file, opts),
    link: (which, opts = {}) =>
      createLink(store, config, which, runtime.now(), signer ? { signer, base: config.linkBaseUrl ?? opts.origin } : undefined),
    linkMode,
    open: (file, request) => openBackup(store, config, file, request),
    status: () => ({
      name: config.name,
      running: runningSince !== undefined,
      ...(runningSince ? { runningSince: runningSince.toISOString() } : {}),
      ...(runningSince && progress ? { progress } : {}),
      lastRun,
      nextRun: options.nextRun?.()?.toISOString() ?? null,
      ...(options.notifier ? { lastNotify: options.notifier.last() } : {}),
      runs,
    }),
    metrics,
  };
}
