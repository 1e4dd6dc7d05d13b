/**
 * planRetention against random histories (fast-check, fixed seed): invariants, plus exact
 * agreement with a brute-force reference written from the rules in docs/retention.md rather than from
 * the implementation (buckets named by calendar strings and ISO week numbers, grouped and
 * sorted, instead of day numbers scanned newest first).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildKey, parseKey, type BackupKey } from "../src/keys.js";
import { planRetention, type KeepRules, type RetentionReason } from "../src/retention.js";
import { mulberry32 } from "./helpers/random.js";

const PREFIX = "db/backups/";
const NAME = "app";
const DAY = 86_400_000;
const SEED = 20_261_123;
const RUNS = 500;

// ---- reference -------------------------------------------------------------------------

const dayLabel = (t: Date) => t.toISOString().slice(0, 10);
const monthLabel = (t: Date) => t.toISOString().slice(0, 7);
/** ISO 8601 week label such as "2026-W53": the week belongs to the year of its Thursday. */
function isoWeekLabel(t: Date): string {
  const date = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const weekday = date.getUTCDay() === 0 ? 7 : date.getUTCDay(); // Monday 1 … Sunday 7
  const thursday = new Date(date.getTime() + (4 - weekday) * DAY);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY));
  return `${String(year).padStart(4, "0")}-W${String(week).padStart(2, "0")}`;
}

/** GFS as specified: each rule's set of keys, by brute force over labelled buckets. */
function referenceGfs(ours: BackupKey[], maxCount: number, rules: KeepRules, protect: string): Map<string, Set<RetentionReason>> {
  const byKeyDesc = [...ours].sort((a, b) => (a.key < b.key ? 1 : -1)); // keys are unique here
  const out = new Map<string, Set<RetentionReason>>();
  const add = (key: string, r: RetentionReason) => out.set(key, (out.get(key) ?? new Set()).add(r));
  byKeyDesc.slice(0, maxCount).forEach((k) => add(k.key, "last"));
  const perBucket = (label: (t: Date) => string, n: number, reason: RetentionReason) => {
    const groups = new Map<string, BackupKey[]>();
    for (const k of ours) groups.set(label(k.time), [...(groups.get(label(k.time)) ?? []), k]);
    const latestLabels = [...groups.keys()].sort().reverse().slice(0, n);
    for (const l of latestLabels) {
      const newest = groups.get(l)!.reduce((a, b) => (b.key > a.key ? b : a));
      add(newest.key, reason);
    }
  };
  perBucket(dayLabel, rules.daily, "daily");
  perBucket(isoWeekLabel, rules.weekly, "weekly");
  perBucket(monthLabel, rules.monthly, "monthly");
  if (ours.some((k) => k.key === protect)) add(protect, "protected");
  return out;
}

/** planRetention as it was before GFS (MAX_COUNT only), kept verbatim as the reference for all-0 rules. */
function legacyPlan(ours: BackupKey[], maxCount: number, protect: string): { keep: string[]; delete: string[] } {
  const desc = [...ours].sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  const protectedKey = desc.find((k) => k.key === protect);
  const others = desc.filter((k) => k.key !== protect);
  const room = protectedKey ? maxCount - 1 : maxCount;
  const keep = [...(protectedKey ? [protectedKey] : []), ...others.slice(0, room)].map((k) => k.key).sort().reverse();
  return { keep, delete: others.slice(room).reverse().map((k) => k.key) };
}

// ---- generators ------------------------------------------------------------------------

const MIN_T = Date.UTC(1971, 0, 1);
const MAX_T = Date.UTC(2099, 11, 31);

const JUNK = [
  `${PREFIX}app/readme.txt`,
  `${PREFIX}app/.lock`,
  `${PREFIX}app/app.lock`,
  `${PREFIX}app/sub/`,
  `${PREFIX}app2/`,
  `${PREFIX}app/app-2026-02-31T03-00-00-000Z-000000.sqlite.gz`,
  `${PREFIX}app/app-2026-01-01T03-00-00-000Z-ABCDEF.sqlite.gz`,
  "random",
  "",
];

const history = fc
  .record({
    base: fc.integer({ min: MIN_T, max: MAX_T }),
    // From one second (same-millisecond and same-day collisions) to decades (year and week-53 boundaries).
    // Or one backup a year, near the same date (same month and week number, different year).
    spread: fc.constantFrom(1000, DAY, 10 * DAY, 100 * DAY, 3 * 365 * DAY, 25 * 365 * DAY, -6),
    backups: fc.array(fc.tuple(fc.nat(), fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffffff }))), {
      maxLength: 200,
      size: "medium",
    }),
    foreign: fc.array(
      fc.oneof(
        fc.constantFrom(...JUNK),
        fc.string(),
        fc.nat().map((n) => ({ derive: n })),
      ),
      { maxLength: 8 },
    ),
    duplicates: fc.array(fc.nat(), { maxLength: 5 }),
    shuffle: fc.nat(),
    protect: fc.oneof(fc.nat().map((i) => ({ pick: i })), fc.integer({ min: MIN_T, max: MAX_T }).map((t) => ({ fresh: t }))),
    maxCount: fc.integer({ min: 1, max: 30 }),
    rules: fc.oneof(
      { arbitrary: fc.constant({ daily: 0, weekly: 0, monthly: 0 }), weight: 1 },
      {
        arbitrary: fc.record({
          daily: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })),
          weekly: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 })),
          monthly: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
        }),
        weight: 3,
      },
    ),
  })
  .map((h) => {
    const offset = (dt: number) => (h.spread < 0 ? (dt % -h.spread) * 365 * DAY + (dt % 5) * 3_600_000 : dt % h.spread);
    const ourKeys = h.backups.map(([dt, suffix]) =>
      buildKey(PREFIX, NAME, new Date(Math.min(MAX_T, h.base + offset(dt))), suffix).key,
    );
    const foreign = h.foreign.map((f) => {
      if (typeof f === "string") return f;
      const k = ourKeys[f.derive % Math.max(1, ourKeys.length)] ?? buildKey(PREFIX, NAME, new Date(h.base), 0).key;
      // Near misses of our own keys: another name, a nested folder, a suffix, another prefix.
      return [
        k.replace(`${PREFIX}app/app-`, `${PREFIX}app/app2-`),
        k.replace(`${PREFIX}app/`, `${PREFIX}app/nested/`),
        `${k}.tmp`,
        k.replace(PREFIX, "other/"),
        buildKey(PREFIX, "app2", new Date(h.base), 0).key,
      ][f.derive % 5]!;
    });
    const keys = [...ourKeys, ...foreign];
    for (const d of h.duplicates) if (keys.length > 0) keys.push(keys[d % keys.length]!);
    const rnd = mulberry32(h.shuffle);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    const protect =
      "pick" in h.protect && ourKeys.length > 0
        ? ourKeys[h.protect.pick % ourKeys.length]!
        : buildKey(PREFIX, NAME, new Date("fresh" in h.protect ? h.protect.fresh : h.base), 0xabcdef).key;
    return { keys, protect, maxCount: h.maxCount, rules: h.rules as KeepRules };
  });

// ---- properties ------------------------------------------------------------------------

describe("planRetention properties (fast-check)", () => {
  it(`holds its invariants and matches the reference over ${RUNS} random histories`, () => {
    let gfsRuns = 0;
    let legacyRuns = 0;
    let runsWithDeletions = 0;
    let largeRuns = 0;
    fc.assert(
      fc.property(history, ({ keys, protect, maxCount, rules }) => {
        const p = planRetention({ prefix: PREFIX, name: NAME, keys, maxCount, keep: rules, protect });
        const gfs = rules.daily + rules.weekly + rules.monthly > 0;
        const ours = [...new Set(keys)].flatMap((k) => parseKey(PREFIX, NAME, k) ?? []);
        const oursSet = new Set(ours.map((k) => k.key));
        const kept = p.keep.map((k) => k.key);
        const deleted = p.delete.map((k) => k.key);
        const newest = [...oursSet].sort().at(-1);

        // Foreign keys: exactly the ignored ones, once each, never kept or deleted.
        expect(new Set(p.ignored)).toEqual(new Set(keys.filter((k) => !oursSet.has(k))));
        expect(p.ignored.length).toBe(new Set(p.ignored).size);
        for (const d of deleted) expect(parseKey(PREFIX, NAME, d)).toBeDefined();

        // keep ∪ delete = ours, disjoint.
        expect(new Set([...kept, ...deleted])).toEqual(oursSet);
        expect(kept.length + deleted.length).toBe(oursSet.size);

        // Orders.
        expect(kept).toEqual([...kept].sort().reverse());
        expect(deleted).toEqual([...deleted].sort());

        // Protected and newest.
        if (oursSet.has(protect)) expect(kept).toContain(protect);
        const legacySqueeze = !gfs && maxCount === 1 && oursSet.has(protect) && protect !== newest;
        if (newest !== undefined && !legacySqueeze) expect(kept).toContain(newest);

        // Bound.
        expect(kept.length).toBeLessThanOrEqual(maxCount + rules.daily + rules.weekly + rules.monthly + 1);

        // Reasons: one non-empty list per kept key.
        expect(new Set(p.reasons.keys())).toEqual(new Set(kept));
        for (const r of p.reasons.values()) expect(r.length).toBeGreaterThan(0);

        if (gfs) {
          gfsRuns++;
          const ref = referenceGfs(ours, maxCount, rules, protect);
          expect(new Set(kept)).toEqual(new Set(ref.keys()));
          for (const [key, reasons] of ref) expect(new Set(p.reasons.get(key))).toEqual(reasons);
        } else {
          legacyRuns++;
          expect({ keep: kept, delete: deleted }).toEqual(legacyPlan(ours, maxCount, protect));
          expect(kept.length).toBe(Math.min(maxCount, oursSet.size));
        }

        // Idempotent: once the plan is applied, planning again deletes nothing and keeps the same.
        const again = planRetention({ prefix: PREFIX, name: NAME, keys: [...kept, ...p.ignored], maxCount, keep: rules, protect });
        expect(again.delete).toEqual([]);
        expect(again.keep.map((k) => k.key)).toEqual(kept);
        if (deleted.length > 0) runsWithDeletions++;
        if (oursSet.size >= 50) largeRuns++;
      }),
      { seed: SEED, numRuns: RUNS },
    );
    // The generator must exercise both modes and actually delete things.
    expect(gfsRuns).toBeGreaterThan(RUNS / 2);
    expect(legacyRuns).toBeGreaterThan(RUNS / 10);
    expect(runsWithDeletions).toBeGreaterThan(RUNS / 2);
    expect(largeRuns).toBeGreaterThan(RUNS / 10);
  });

  it("the reference's ISO weeks match known calendar facts", () => {
    expect(isoWeekLabel(new Date("2026-12-31T12:00:00Z"))).toBe("2026-W53");
    expect(isoWeekLabel(new Date("2027-01-03T23:59:59.999Z"))).toBe("2026-W53");
    expect(isoWeekLabel(new Date("2027-01-04T00:00:00Z"))).toBe("2027-W01");
    expect(isoWeekLabel(new Date("2024-12-30T00:00:00Z"))).toBe("2025-W01");
    expect(isoWeekLabel(new Date("2021-01-03T00:00:00Z"))).toBe("2020-W53");
    expect(isoWeekLabel(new Date("2026-03-29T23:59:59.999Z"))).toBe("2026-W13");
    expect(isoWeekLabel(new Date("2026-03-30T00:00:00Z"))).toBe("2026-W14");
  });
});
