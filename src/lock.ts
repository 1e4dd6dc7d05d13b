/**
 * Cross-instance lease: one backup of a name at a time across processes and isolates.
 *
 * The lease is a small JSON object at `{prefix}{name}/.lock` with its owner and expiry. The
 * holder renews it while the backup runs and deletes it when done; a holder that dies
 * simply stops renewing, and the lease expires after LOCK_TTL_SECONDS.
 *
 * Two ways to take it, chosen once per instance by a probe:
 * - conditional: `PUT If-None-Match: *` creates the lease only if there is none, so of two
 *   instances starting together exactly one wins (AWS S3, R2, recent MinIO).
 * - best-effort (servers that refuse or ignore the condition, e.g. Swift): read, write,
 *   wait LOCK_SETTLE, read back; whoever's lease is there after the pause has it. Two
 *   instances only both proceed if one's read-then-write straddles the other's whole
 *   pause, which takes a request slower than the pause.
 * Taking over an expired lease is best-effort in both modes (S3 cannot delete "only if
 * unchanged"), so it is followed by the same read-back.
 */
import { BackupError } from "./errors.js";
import { backupFolder } from "./keys.js";
import type { Logger } from "./log.js";
import type { BackupStore } from "./store/store.js";

export type LockMode = "auto" | "conditional" | "best-effort" | "off";

export interface Lease {
  owner: string;
  /** Where the holder runs (host and pid, or "workers"): for humans reading the object. */
  holder: string;
  acquiredAt: string;
  expiresAt: string;
}

export interface HeldLease {
  /** False once another instance was seen holding the lease (ours had expired). */
  held(): boolean;
  release(): Promise<void>;
}

export interface LockDeps {
  store: Pick<BackupStore, "putSmall" | "getSmall" | "delete">;
  prefix: string;
  name: string;
  mode: LockMode;
  ttlMs: number;
  /** Pause before the read-back of a best-effort write. */
  settleMs: number;
  /** Identifies this instance's leases; random per instance. */
  owner: string;
  holder: string;
  now(): Date;
  logger: Logger;
  sleep?: (ms: number) => Promise<void>;
}

export interface Lock {
  /** Take the lease or throw BACKUP_RUNNING (409) naming the holder and when it expires. */
  acquire(): Promise<HeldLease>;
  /** The mode in use once probed ("conditional" or "best-effort"), or the configured one. */
  mode(): LockMode | undefined;
}

/** Long enough for a request or two, short enough not to slow every backup much. */
export const DEFAULT_SETTLE_MS = 1000;

export function lockKey(prefix: string, name: string): string {
  return `${backupFolder(prefix, name)}.lock`;
}

const JSON_TYPE = "application/json";

export function parseLease(text: string | undefined): Lease | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<Lease>;
    if (typeof v.owner === "string" && typeof v.expiresAt === "string" && !Number.isNaN(Date.parse(v.expiresAt))) {
      return { owner: v.owner, holder: String(v.holder ?? "?"), acquiredAt: String(v.acquiredAt ?? "?"), expiresAt: v.expiresAt };
    }
  } catch {
    // not JSON: treated like an expired lease below
  }
  return undefined;
}

function describeLease(l: Lease | undefined): Record<string, string> {
  return l ? { holder: l.holder, expiredAt: l.expiresAt } : { note: "unreadable lease" };
}

export function createLock(deps: LockDeps): Lock {
  const { store, ttlMs, owner, logger } = deps;
  const key = lockKey(deps.prefix, deps.name);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let resolved: Promise<"conditional" | "best-effort"> | undefined;
  let inUse: LockMode | undefined = deps.mode === "off" || deps.mode === "best-effort" ? deps.mode : undefined;

  const lease = (acquiredAt: Date): Lease => ({
    owner,
    holder: deps.holder,
    acquiredAt: acquiredAt.toISOString(),
    expiresAt: new Date(deps.now().getTime() + ttlMs).toISOString(),
  });
  const write = (l: Lease, ifAbsent: boolean) => store.putSmall(key, JSON.stringify(l), { contentType: JSON_TYPE, ifAbsent });
  const read = async () => {
    const text = await store.getSmall(key);
    return { exists: text !== undefined, lease: parseLease(text) };
  };
  const busy = (l: Lease) =>
    new BackupError(
      "BACKUP_RUNNING",
      `a backup of "${deps.name}" is running on another instance (${l.holder}, since ${l.acquiredAt}); its lease at ${key} expires at ${l.expiresAt} unless renewed. Try again when it has finished.`,
      409,
    );
  const live = (l: Lease | undefined): l is Lease => l !== undefined && Date.parse(l.expiresAt) > deps.now().getTime();

  /** Whether the server honours If-None-Match: a second conditional write must be refused. */
  async function probe(): Promise<"conditional" | "best-effort"> {
    const probeKey = `${key}-probe-${owner}`;
    try {
      const first = await store.putSmall(probeKey, "{}", { contentType: JSON_TYPE, ifAbsent: true });
      const second = first && (await store.putSmall(probeKey, "{}", { contentType: JSON_TYPE, ifAbsent: true }));
      await store.delete([probeKey]).catch(() => undefined);
      return first && !second ? "conditional" : "best-effort";
    } catch (err) {
      await store.delete([probeKey]).catch(() => undefined);
      if (err instanceof BackupError && err.code === "CONDITIONAL_WRITE_UNSUPPORTED") return "best-effort";
      throw err;
    }
  }

  async function resolveMode(): Promise<"conditional" | "best-effort"> {
    if (deps.mode === "best-effort") return "best-effort";
    resolved ??= probe().catch((err: unknown) => {
      resolved = undefined; // a store that was down is probed again next time
      throw err;
    });
    const found = await resolved;
    if (deps.mode === "conditional" && found !== "conditional") {
      throw new BackupError(
        "LOCK_UNSUPPORTED",
        `LOCK=conditional, but the store does not honour conditional writes (If-None-Match: *); use LOCK=best-effort or LOCK=auto with this store.`,
        500,
      );
    }
    return found;
  }

  /** After a write: pause, then whose lease is there now. */
  async function settled(): Promise<Lease | undefined> {
    await sleep(deps.settleMs);
    return (await read()).lease;
  }

  async function take(mode: "conditional" | "best-effort", started: Date): Promise<void> {
    const mine = lease(started);
    if (mode === "conditional" && (await write(mine, true))) return;
    const current = await read();
    if (live(current.lease) && current.lease.owner !== owner) throw busy(current.lease);
    if (current.exists) logger.warn("taking over an expired lease", { lock: key, ...describeLease(current.lease) });
    let holder: Lease | undefined;
    if (current.exists && mode === "conditional") {
      await store.delete([key]);
      // Another instance may have deleted and re-created it in between: check who has it.
      holder = (await write(mine, true)) ? await settled() : (await read()).lease;
    } else {
      await write(mine, false);
      holder = await settled();
    }
    if (holder?.owner !== owner) throw busy(holder ?? mine);
  }

  return {
    mode: () => inUse,
    async acquire(): Promise<HeldLease> {
      if (deps.mode === "off") return { held: () => true, release: async () => undefined };
      const mode = await resolveMode();
      inUse = mode;
      const started = deps.now();
      await take(mode, started);
      logger.info("lease taken", { lock: key, mode, ttlSeconds: Math.round(ttlMs / 1000) });

      let held = true;
      let stopped = false;
      let renewing: Promise<void> = Promise.resolve();
      // Renew at a third of the TTL, so two renewals can fail before the lease lapses.
      const timer = setInterval(() => {
        renewing = renewing.then(async () => {
          if (stopped || !held) return;
          try {
            const current = await read();
            if (current.lease && current.lease.owner !== owner) {
              held = false;
              logger.error("lease lost: another instance holds it now", { lock: key, holder: current.lease.holder });
              return;
            }
            await write(lease(started), false);
          } catch (err) {
            logger.warn("lease renewal failed; will retry", { lock: key, error: err instanceof Error ? err.message : String(err) });
          }
        });
      }, Math.max(50, Math.floor(ttlMs / 3)));
      (timer as { unref?: () => void }).unref?.();

      return {
        held: () => held,
        async release() {
          stopped = true;
          clearInterval(timer);
          await renewing;
          try {
            if ((await read()).lease?.owner === owner) await store.delete([key]);
          } catch (err) {
            logger.warn("could not release the lease; it expires by itself", { lock: key, expiresIn: `${Math.round(ttlMs / 1000)} s`, error: err instanceof Error ? err.message : String(err) });
          }
        },
      };
    },
  };
}
