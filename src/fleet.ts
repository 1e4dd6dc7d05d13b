/**
 * Every database of a deployment (BACKUP_SOURCE, or the entries of BACKUP_SOURCES): one
 * backup service per name, each with its own keys, retention, lease and status, sharing the
 * store, runtime, metrics and alerts. A scheduled run backs them up one after the other, so
 * memory holds one image at a time, and one failure does not stop the others.
 */
import { configFor, type Config, type Database } from "./config.js";
import { asBackupError, BackupError } from "./errors.js";
import { createRunMetrics, type RunMetrics } from "./metrics.js";
import { createBackupService, type BackupService, type ScheduledResult, type ServiceOptions } from "./service.js";
import type { BackupDeps } from "./backup.js";
import { NAME_PATTERN } from "./keys.js";
import type { Source } from "./sources/source.js";

export type FleetRun<T = ScheduledResult> = { name: string; ok: true; result: T } | { name: string; ok: false; error: BackupError };

export interface Fleet {
  readonly names: readonly string[];
  readonly services: readonly BackupService[];
  readonly metrics: RunMetrics;
  /** The service of `name`; without a name, the only one (NAME_REQUIRED when there are several). */
  pick(name: string | undefined): BackupService;
  /** `work` for every database in order; a failure is recorded and the next one still runs. */
  runAll<T>(work: (service: BackupService) => Promise<T>): Promise<FleetRun<T>[]>;
  /** The scheduled run of every database for the window starting at `scheduledAt`, in order. */
  scheduledAll(scheduledAt: Date): Promise<FleetRun[]>;
}

export interface FleetDeps extends Omit<BackupDeps, "config" | "source"> {
  config: Config;
  source: (database: Database) => Source;
}

/** The service of `name`; without a name, the only one (NAME_REQUIRED when there are several). */
export function pickService(services: readonly BackupService[], name: string | undefined): BackupService {
  const picked = pickName(services.map((s) => s.name), name);
  return services.find((s) => s.name === picked)!;
}

/** pickService on the names alone: the name of the database meant (errors NAME_REQUIRED, UNKNOWN_NAME). */
export function pickName(names: readonly string[], name: string | undefined): string {
  if (name === undefined || name === "") {
    if (names.length === 1) return names[0]!;
    throw new BackupError("NAME_REQUIRED", `this deployment backs up several databases (${names.join(", ")}): say which one with ?name= (CLI: --name).`, 400);
  }
  if (names.includes(name)) return name;
  // Echo the name only when it is a valid one: it comes from a request.
  const shown = NAME_PATTERN.test(name) ? JSON.stringify(name) : "the given name";
  throw new BackupError("UNKNOWN_NAME", `${shown} is not a database of this deployment (names: ${names.join(", ")}).`, 404);
}

export function createFleet(deps: FleetDeps, options: Omit<ServiceOptions, "metrics"> = {}): Fleet {
  const { config } = deps;
  const names = config.databases.map((d) => d.name);
  const metrics = createRunMetrics(names);
  const services = config.databases.map((database) =>
    createBackupService({ ...deps, config: configFor(config, database), source: deps.source(database) }, { ...options, metrics }),
  );

  async function runAll<T>(work: (service: BackupService) => Promise<T>): Promise<FleetRun<T>[]> {
    const runs: FleetRun<T>[] = [];
    for (const [i, service] of services.entries()) {
      const name = names[i]!;
      try {
        runs.push({ name, ok: true, result: await work(service) });
      } catch (err) {
        // Logged (and alerted) by the service; the next database still gets its backup.
        runs.push({ name, ok: false, error: asBackupError(err) });
      }
    }
    return runs;
  }

  return {
    names,
    services,
    metrics,
    pick: (name) => pickService(services, name),
    runAll,
    scheduledAll: (scheduledAt) => runAll((service) => service.scheduled(scheduledAt)),
  };
}
