/**
 * Which backups to delete (pure). Input: the keys found under this name's folder (anything,
 * including objects we did not write), the new backup's key, MAX_COUNT and the KEEP_* rules.
 * Output: the keys to keep (newest first, each with the rules that kept it) and the keys to
 * delete (oldest first) — only keys that parse exactly as this name's backups are ever in
 * either list; everything else is `ignored` and never touched.
 *
 * Two modes:
 *
 * - All KEEP_* 0 (the default): MAX_COUNT bounds the total. The just-written key (`protect`)
 *   is kept and counts against MAX_COUNT; the rest of the room goes to the newest others.
 *   So with a skewed clock elsewhere (keys "newer" than the one just written), the total
 *   stays MAX_COUNT.
 *
 * - Any KEEP_* > 0 (grandfather-father-son): a backup is kept if ANY rule keeps it, and
 *   MAX_COUNT is then just one rule among others, not a bound on the total:
 *     last     the newest MAX_COUNT backups;
 *     daily    for each of the KEEP_DAILY most recent UTC calendar days that have a backup,
 *              the newest backup of that day;
 *     weekly   the same per ISO week (Monday 00:00 UTC to Sunday 24:00 UTC; the week of
 *              2026-12-31 and 2027-01-01 is one week, 2026-W53);
 *     monthly  the same per UTC calendar month;
 *     protected  the just-written key, whatever its time.
 *   As in restic and Borg, days/weeks/months without a backup do not use up a rule's budget:
 *   KEEP_DAILY=7 after a 3-day outage still keeps 7 distinct days. The newest backup overall
 *   is always kept (MAX_COUNT ≥ 1). At most MAX_COUNT + KEEP_DAILY + KEEP_WEEKLY +
 *   KEEP_MONTHLY + 1 backups are kept.
 *
 * "Newest" is key order, which is time order (then the random suffix within a millisecond);
 * a backup's day, week and month come from the time in its key.
 */
import { newestFirst, parseKey, type BackupKey } from "./keys.js";

export type RetentionReason = "last" | "daily" | "weekly" | "monthly" | "protected";
export const RETENTION_REASONS: readonly RetentionReason[] = ["last", "daily", "weekly", "monthly", "protected"];

/** KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY; 0 turns a rule off. */
export interface KeepRules {
  daily: number;
  weekly: number;
  monthly: number;
}

export interface RetentionPlan {
  keep: BackupKey[];
  delete: BackupKey[];
  /** Keys under the folder that are not ours; never touched. */
  ignored: string[];
  /** For each kept key, the rules that kept it, in RETENTION_REASONS order. */
  reasons: Map<string, RetentionReason[]>;
}

const DAY_MS = 86_400_000;

/** Days since 1970-01-01 UTC (negative before). */
const dayOf = (t: Date) => Math.floor(t.getTime() / DAY_MS);
/** The ISO week as the day number of its Monday; 1970-01-01 was a Thursday, 3 days after one. */
const weekOf = (t: Date) => {
  const day = dayOf(t);
  return day - (((day + 3) % 7) + 7) % 7;
};
const monthOf = (t: Date) => t.getUTCFullYear() * 12 + t.getUTCMonth();

const BUCKETS: readonly [RetentionReason & keyof KeepRules, (t: Date) => number][] = [
  ["daily", dayOf],
  ["weekly", weekOf],
  ["monthly", monthOf],
];

export function planRetention(options: {
  prefix: string;
  name: string;
  keys: readonly string[];
  maxCount: number;
  /** KEEP_* rules; absent or all 0 = MAX_COUNT alone, as before GFS existed. */
  keep?: Partial<KeepRules>;
  /** The backup just written: always kept, even if a skewed clock elsewhere wrote "newer" keys. */
  protect: string;
}): RetentionPlan {
  const { prefix, name, keys, maxCount, protect } = options;
  if (!Number.isInteger(maxCount) || maxCount < 1) throw new Error(`maxCount must be a positive integer, got ${maxCount}`);
  const rules: KeepRules = { daily: 0, weekly: 0, monthly: 0, ...options.keep };
  for (const [rule, n] of Object.entries(rules)) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`keep.${rule} must be a whole number ≥ 0, got ${n}`);
  }

  const ours: BackupKey[] = [];
  const ignored: string[] = [];
  for (const key of new Set(keys)) {
    const parsed = parseKey(prefix, name, key);
    if (parsed) ours.push(parsed);
    else ignored.push(key);
  }
  const sorted = newestFirst(ours);
  const reasons = new Map<string, Set<RetentionReason>>();
  const mark = (key: string, reason: RetentionReason) => {
    const set = reasons.get(key) ?? new Set();
    set.add(reason);
    reasons.set(key, set);
  };

  const protectedKey = sorted.find((k) => k.key === protect);
  if (protectedKey) mark(protectedKey.key, "protected");

  if (rules.daily === 0 && rules.weekly === 0 && rules.monthly === 0) {
    // MAX_COUNT bounds the total: the protected key takes one of its places.
    const others = sorted.filter((k) => k !== protectedKey);
    const newest = new Set(sorted.slice(0, maxCount));
    for (const k of others.slice(0, protectedKey ? maxCount - 1 : maxCount)) mark(k.key, "last");
    if (protectedKey && newest.has(protectedKey)) mark(protectedKey.key, "last");
  } else {
    for (const k of sorted.slice(0, maxCount)) mark(k.key, "last");
    for (const [rule, bucketOf] of BUCKETS) {
      // Newest first, so the first key of each new bucket is that bucket's newest.
      let budget = rules[rule];
      let previous: number | undefined;
      for (const k of sorted) {
        if (budget === 0) break;
        const bucket = bucketOf(k.time);
        if (bucket === previous) continue;
        previous = bucket;
        mark(k.key, rule);
        budget -= 1;
      }
    }
  }

  const keep = sorted.filter((k) => reasons.has(k.key));
  const del = sorted.filter((k) => !reasons.has(k.key)).reverse();
  const ordered = new Map(
    keep.map((k) => [k.key, RETENTION_REASONS.filter((r) => reasons.get(k.key)!.has(r))] as const),
  );
  return { keep, delete: del, ignored, reasons: ordered };
}

/** How many kept backups each rule accounts for (a backup kept by two rules counts for both). */
export function keptByRule(plan: Pick<RetentionPlan, "reasons">): Record<RetentionReason, number> {
  const counts = Object.fromEntries(RETENTION_REASONS.map((r) => [r, 0])) as Record<RetentionReason, number>;
  for (const list of plan.reasons.values()) for (const r of list) counts[r] += 1;
  return counts;
}
