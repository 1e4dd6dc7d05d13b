/**
 * The operations both runtimes expose (HTTP API, cron, CLI), with one backup at a time
 * per instance and the status of the last run. Cross-instance locking is separate.
 */
import { createBackupRunner, type BackupDeps, type Manifest } from "./backup.js";
import { createLink, listBackups, type BackupEntry, type Link } from "./catalog.js";
import { asBackupError, BackupError } from "./errors.js";

export interface LastRun {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  durationMs: number;
  key?: string;
  bytes?: number;
  gzipBytes?: number;
  pruned?: number;
  error?: { code: string; message: string };
}

export interface Status {
  name: string;
  running: boolean;
  /** Start time of the running backup. */
  runningSince?: string;
  lastRun: LastRun | null;
  nextRun: string | null;
}

export interface BackupService {
  backup(): Promise<Manifest>;
  list(): Promise<BackupEntry[]>;
  link(which: string): Promise<Link>;
  status(): Status;
}

export interface ServiceOptions {
  /** When the scheduler fires next (Node scheduler or the Workers cron), if known. */
  nextRun?: () => Date | undefined;
}

export function createBackupService(deps: BackupDeps & { config: BackupDeps["config"] & { linkTtlSeconds: number } }, options: ServiceOptions = {}): BackupService {
  const runner = createBackupRunner(deps);
  const { config, runtime, store } = deps;
  let runningSince: Date | undefined;
  let lastRun: LastRun | null = null;

  return {
    async backup() {
      if (runningSince) {
        throw new BackupError("BACKUP_RUNNING", `a backup of "${config.name}" started at ${runningSince.toISOString()} is still running; try again when it has finished.`, 409);
      }
      const started = runtime.now();
      runningSince = started;
      const finish = (fields: Partial<LastRun> & { ok: boolean }) => {
        const finished = runtime.now();
        lastRun = { startedAt: started.toISOString(), finishedAt: finished.toISOString(), durationMs: finished.getTime() - started.getTime(), ...fields };
      };
      try {
        const m = await runner.run();
        finish({ ok: true, key: m.key, bytes: m.bytes, gzipBytes: m.gzipBytes, pruned: m.pruned.length, ...(m.pruneError ? { error: { code: "PRUNE_FAILED", message: m.pruneError } } : {}) });
        return m;
      } catch (err) {
        const e = asBackupError(err);
        finish({ ok: false, error: { code: e.code, message: e.message } });
        throw e;
      } finally {
        runningSince = undefined;
      }
    },
    list: () => listBackups(store, config),
    link: (which) => createLink(store, config, which, runtime.now()),
    status: () => ({
      name: config.name,
      running: runningSince !== undefined,
      ...(runningSince ? { runningSince: runningSince.toISOString() } : {}),
      lastRun,
      nextRun: options.nextRun?.()?.toISOString() ?? null,
    }),
  };
}
