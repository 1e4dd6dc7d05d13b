/**
 * The cross-instance lease against the real S3 server: of two instances taking it at once
 * exactly one wins, in both modes; an expired lease (a killed holder) is taken over; a
 * held lease is renewed; a lost one is noticed; and nothing but this name's `.lock` is
 * ever written or deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_MAX_BYTES } from "../functions/node-runtime.js";
import { parseConfig } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { createLock, lockKey, parseLease, type Lock, type LockMode } from "../src/lock.js";
import { jsonLogger } from "../src/log.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let store: BackupStore;
const logLines = capturedLines("lock log");
const logger = jsonLogger({ write: (line) => logLines.push(line), level: "debug" });
const PREFIX = "backups/";

beforeAll(async () => {
  s3 = await startTestStore();
  store = createS3Store(parseConfig(s3.env({ BACKUP_SOURCE: "/nowhere.db" }), { maxBytes: NODE_MAX_BYTES }).s3);
});
afterAll(async () => {
  await s3?.close();
});

let owners = 0;
function lock(name: string, mode: LockMode, o: { ttlMs?: number; settleMs?: number; store?: BackupStore; holder?: string } = {}): Lock {
  const id = `owner${owners++}`;
  return createLock({
    store: o.store ?? store,
    prefix: PREFIX,
    name,
    mode,
    ttlMs: o.ttlMs ?? 30_000,
    settleMs: o.settleMs ?? 150,
    owner: id,
    holder: o.holder ?? `test ${id}`,
    now: () => new Date(),
    logger,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const leaseObjects = async (name: string) => (await s3.keys(`${PREFIX}${name}/`)).filter((k) => k.includes(".lock"));

/** A server that accepts If-None-Match but does not honour it (as unpatched s3rver does). */
function ignoringConditions(inner: BackupStore): BackupStore {
  return { ...inner, putSmall: (key, body, options) => inner.putSmall(key, body, { ...options, ifAbsent: false }) };
}

describe("probe", () => {
  it(`finds out whether ${"the store"} honours If-None-Match, once, and leaves no probe object`, async () => {
    const l = lock("probe", "auto");
    expect(l.mode()).toBeUndefined();
    const held = await l.acquire();
    // s3rver (patched) honours it; Swift answers 501 NotImplemented.
    expect(l.mode()).toBe(s3.external ? "best-effort" : "conditional");
    expect(await leaseObjects("probe")).toEqual([lockKey(PREFIX, "probe")]);
    await held.release();
    expect(await leaseObjects("probe")).toEqual([]);
  });

  it("a server that ignores the condition is detected and the best-effort way is used", async () => {
    const l = lock("ignoring", "auto", { store: ignoringConditions(store) });
    const held = await l.acquire();
    expect(l.mode()).toBe("best-effort");
    await held.release();
  });

  it("LOCK=conditional refuses a server without conditional writes, naming the setting", async () => {
    const e = await backupError(lock("strict", "conditional", { store: ignoringConditions(store) }).acquire());
    expect(e.code).toBe("LOCK_UNSUPPORTED");
    expect(e.message).toMatch(/LOCK=best-effort/);
    expect(await leaseObjects("strict")).toEqual([]);
  });

  it("LOCK=off writes nothing", async () => {
    const held = await lock("off", "off").acquire();
    expect(held.held()).toBe(true);
    expect(await leaseObjects("off")).toEqual([]);
    await held.release();
  });
});

describe.each(["auto", "best-effort"] as const)("LOCK=%s", (mode) => {
  it("of two instances taking the lease at the same moment exactly one gets it, 10 rounds", async () => {
    const name = `race-${mode}`;
    for (let round = 0; round < 10; round++) {
      const [a, b] = [lock(name, mode, { holder: "instance A" }), lock(name, mode, { holder: "instance B" })];
      const results = await Promise.allSettled([a.acquire(), b.acquire()]);
      const won = results.filter((r) => r.status === "fulfilled");
      expect(won, `round ${round}`).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(BackupError);
      expect((lost.reason as BackupError).code).toBe("BACKUP_RUNNING");
      expect((lost.reason as BackupError).status).toBe(409);
      expect((lost.reason as BackupError).message).toMatch(/another instance \(instance [AB], since .*expires at/);
      await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<Lock["acquire"]>>>).value.release();
      expect(await leaseObjects(name)).toEqual([]);
    }
  });

  it("a live lease blocks until released; release deletes only its own lease", async () => {
    const name = `live-${mode}`;
    const first = await lock(name, mode).acquire();
    const other = lock(name, mode);
    expect((await backupError(other.acquire())).code).toBe("BACKUP_RUNNING");
    await first.release();
    const second = await other.acquire();
    // The first holder releasing again (late) must not delete the second holder's lease.
    await first.release();
    expect(await leaseObjects(name)).toEqual([lockKey(PREFIX, name)]);
    await second.release();
    expect(await leaseObjects(name)).toEqual([]);
  });

  it("the lease of a holder that died (never released, never renewed) expires and is taken over", async () => {
    const name = `dead-${mode}`;
    // What a killed process leaves: its lease object, expired a moment ago.
    const dead = { owner: "dead-owner", holder: "killed host pid 1", acquiredAt: new Date(Date.now() - 60_000).toISOString(), expiresAt: new Date(Date.now() - 1).toISOString() };
    await store.putSmall(lockKey(PREFIX, name), JSON.stringify(dead), { contentType: "application/json" });
    const held = await lock(name, mode).acquire();
    expect(held.held()).toBe(true);
    expect(logLines.some((l) => l.includes("taking over an expired lease") && l.includes("killed host pid 1"))).toBe(true);
    await held.release();
  });

  it("an unreadable lease object counts as expired rather than blocking forever", async () => {
    const name = `garbage-${mode}`;
    await store.putSmall(lockKey(PREFIX, name), "not json", { contentType: "text/plain" });
    const held = await lock(name, mode).acquire();
    await held.release();
    expect(await leaseObjects(name)).toEqual([]);
  });

  it("the holder renews its lease, so a backup longer than the TTL keeps it", async () => {
    const name = `renew-${mode}`;
    const held = await lock(name, mode, { ttlMs: 900 }).acquire();
    await sleep(2_000); // more than twice the TTL
    expect(held.held()).toBe(true);
    const lease = parseLease(await store.getSmall(lockKey(PREFIX, name)));
    expect(Date.parse(lease!.expiresAt)).toBeGreaterThan(Date.now());
    expect((await backupError(lock(name, mode).acquire())).code).toBe("BACKUP_RUNNING");
    await held.release();
  });

  it("a holder whose lease was taken (it stalled past the TTL) notices at its next renewal", async () => {
    const name = `lost-${mode}`;
    const held = await lock(name, mode, { ttlMs: 600 }).acquire();
    const intruder = { owner: "intruder", holder: "other", acquiredAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() };
    await store.putSmall(lockKey(PREFIX, name), JSON.stringify(intruder), { contentType: "application/json" });
    await sleep(700);
    expect(held.held()).toBe(false);
    await held.release();
    // Not ours any more: release leaves the other instance's lease alone.
    expect(parseLease(await store.getSmall(lockKey(PREFIX, name)))?.owner).toBe("intruder");
  });
});
