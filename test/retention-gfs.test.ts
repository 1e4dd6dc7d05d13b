import { describe, expect, it } from "vitest";
import { buildKey } from "../src/keys.js";
import { keptByRule, planRetention, type KeepRules, type RetentionPlan, type RetentionReason } from "../src/retention.js";

const PREFIX = "backups/";
const NAME = "app";
const HOUR = 3_600_000;

/** Key of a backup made at `iso` (UTC). */
function at(iso: string, suffix = 0x9f3a1c): string {
  return buildKey(PREFIX, NAME, new Date(iso), suffix).key;
}

/** Back from a key to the ISO time it was made at, to keep expectations readable. */
const iso = (key: string) => {
  const m = /-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z-/.exec(key)!;
  return `${m[1]}T${m[2]}:${m[3]}:${m[4]}.${m[5]}Z`;
};
const isos = (list: { key: string }[]) => list.map((k) => iso(k.key));

/** Backups every `stepMs` from `from` (inclusive) to `to` (exclusive). */
function series(from: string, to: string, stepMs: number): string[] {
  const keys: string[] = [];
  for (let t = Date.parse(from); t < Date.parse(to); t += stepMs) keys.push(at(new Date(t).toISOString()));
  return keys;
}

function plan(keys: readonly string[], maxCount: number, keep: Partial<KeepRules>, protect = keys.at(-1)!): RetentionPlan {
  return planRetention({ prefix: PREFIX, name: NAME, keys, maxCount, keep, protect });
}

const hoursOf = (day: string, from = 0, to = 24) =>
  Array.from({ length: to - from }, (_, i) => `${day}T${String(to - 1 - i).padStart(2, "0")}:00:00.000Z`);

describe("planRetention GFS: hand-computed histories", () => {
  type Case = {
    title: string;
    keys: string[];
    maxCount: number;
    keep: Partial<KeepRules>;
    protect?: string;
    /** Kept backups' times, newest first. */
    kept: string[];
    /** Rules of some kept backups (time → reasons). */
    reasons?: Record<string, RetentionReason[]>;
    /** Deleted backups' times, oldest first, when the list is short enough to write out. */
    deleted?: string[];
  };

  const hourlyQ1 = series("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z", HOUR); // 2160 backups
  // The same without backups from 2026-03-20 to 2026-03-26 (a week-long outage).
  const hourlyQ1Gap = hourlyQ1.filter((k) => !/-2026-03-2[0-6]T/.test(k));

  const cases: Case[] = [
    {
      // 2026-03-31 is a Tuesday: ISO weeks start Mon 03-30, 03-23, 03-16, 03-09.
      title: "hourly for 3 months, MAX_COUNT=24 KEEP_DAILY=7 KEEP_WEEKLY=4 KEEP_MONTHLY=6",
      keys: hourlyQ1,
      maxCount: 24,
      keep: { daily: 7, weekly: 4, monthly: 6 },
      kept: [
        ...hoursOf("2026-03-31"),
        "2026-03-30T23:00:00.000Z",
        "2026-03-29T23:00:00.000Z",
        "2026-03-28T23:00:00.000Z",
        "2026-03-27T23:00:00.000Z",
        "2026-03-26T23:00:00.000Z",
        "2026-03-25T23:00:00.000Z",
        "2026-03-22T23:00:00.000Z",
        "2026-03-15T23:00:00.000Z",
        "2026-02-28T23:00:00.000Z",
        "2026-01-31T23:00:00.000Z",
      ],
      reasons: {
        "2026-03-31T23:00:00.000Z": ["last", "daily", "weekly", "monthly", "protected"],
        "2026-03-31T22:00:00.000Z": ["last"],
        "2026-03-31T00:00:00.000Z": ["last"],
        "2026-03-30T23:00:00.000Z": ["daily"],
        "2026-03-29T23:00:00.000Z": ["daily", "weekly"],
        "2026-03-25T23:00:00.000Z": ["daily"],
        "2026-03-22T23:00:00.000Z": ["weekly"],
        "2026-03-15T23:00:00.000Z": ["weekly"],
        "2026-02-28T23:00:00.000Z": ["monthly"],
        "2026-01-31T23:00:00.000Z": ["monthly"],
      },
    },
    {
      title: "the same with a week-long gap: empty days and weeks do not use up the budget",
      keys: hourlyQ1Gap,
      maxCount: 24,
      keep: { daily: 7, weekly: 4, monthly: 6 },
      kept: [
        ...hoursOf("2026-03-31"),
        "2026-03-30T23:00:00.000Z",
        "2026-03-29T23:00:00.000Z",
        "2026-03-28T23:00:00.000Z",
        "2026-03-27T23:00:00.000Z",
        "2026-03-19T23:00:00.000Z",
        "2026-03-18T23:00:00.000Z",
        "2026-03-15T23:00:00.000Z",
        "2026-02-28T23:00:00.000Z",
        "2026-01-31T23:00:00.000Z",
      ],
      reasons: {
        "2026-03-29T23:00:00.000Z": ["daily", "weekly"],
        "2026-03-19T23:00:00.000Z": ["daily", "weekly"],
        "2026-03-18T23:00:00.000Z": ["daily"],
        "2026-03-15T23:00:00.000Z": ["weekly"],
      },
    },
    {
      title: "daily with gaps and several backups a day: the newest of each of the 3 latest days that have one",
      keys: [
        at("2026-01-01T10:00:00Z"),
        at("2026-01-01T22:00:00Z"),
        at("2026-01-02T05:00:00Z"),
        at("2026-01-05T12:00:00Z"),
        at("2026-01-10T01:00:00Z"),
        at("2026-01-10T02:00:00Z"),
      ],
      maxCount: 1,
      keep: { daily: 3 },
      kept: ["2026-01-10T02:00:00.000Z", "2026-01-05T12:00:00.000Z", "2026-01-02T05:00:00.000Z"],
      deleted: ["2026-01-01T10:00:00.000Z", "2026-01-01T22:00:00.000Z", "2026-01-10T01:00:00.000Z"],
    },
    {
      title: "UTC day boundary: 23:59:59.999 and 00:00:00.000 are different days",
      keys: [at("2026-03-01T23:59:59.999Z"), at("2026-03-02T00:00:00.000Z"), at("2026-03-02T00:00:00.001Z")],
      maxCount: 1,
      keep: { daily: 2 },
      kept: ["2026-03-02T00:00:00.001Z", "2026-03-01T23:59:59.999Z"],
      deleted: ["2026-03-02T00:00:00.000Z"],
    },
    {
      title: "same millisecond: the larger suffix is the newest of the day",
      keys: [
        at("2026-05-09T08:00:00Z", 0x000001),
        at("2026-05-09T08:00:00Z", 0x000002),
        at("2026-05-10T08:00:00Z", 0x000002),
        at("2026-05-10T08:00:00Z", 0x00000a),
        at("2026-05-11T08:00:00Z", 0x000001),
      ],
      maxCount: 1,
      keep: { daily: 3 },
      protect: at("2026-05-11T08:00:00Z", 0x000001),
      kept: ["2026-05-11T08:00:00.000Z", "2026-05-10T08:00:00.000Z", "2026-05-09T08:00:00.000Z"],
      deleted: ["2026-05-09T08:00:00.000Z", "2026-05-10T08:00:00.000Z"],
    },
    {
      title: "Sunday 23:59:59.999 UTC and Monday 00:00 UTC are different ISO weeks",
      keys: [at("2026-03-23T10:00:00Z"), at("2026-03-29T23:59:59.999Z"), at("2026-03-30T00:00:00.000Z")],
      maxCount: 1,
      keep: { weekly: 2 },
      kept: ["2026-03-30T00:00:00.000Z", "2026-03-29T23:59:59.999Z"],
      deleted: ["2026-03-23T10:00:00.000Z"],
    },
    {
      // 2026 starts on a Thursday, so it has an ISO week 53: Mon 2026-12-28 to Sun 2027-01-03.
      title: "year boundary: 2026-12-31 and 2027-01-01 share ISO week 2026-W53 but not a month",
      keys: series("2026-12-20T12:00:00Z", "2027-01-06T00:00:00Z", 24 * HOUR),
      maxCount: 1,
      keep: { weekly: 3, monthly: 2 },
      kept: ["2027-01-05T12:00:00.000Z", "2027-01-03T12:00:00.000Z", "2026-12-31T12:00:00.000Z", "2026-12-27T12:00:00.000Z"],
      reasons: {
        "2027-01-05T12:00:00.000Z": ["last", "weekly", "monthly", "protected"],
        "2027-01-03T12:00:00.000Z": ["weekly"],
        "2026-12-31T12:00:00.000Z": ["monthly"],
        "2026-12-27T12:00:00.000Z": ["weekly"],
      },
    },
    {
      title: "ISO week 53 holds the last days of December and the first of January",
      keys: [
        at("2026-12-27T12:00:00Z"), // Sunday, 2026-W52
        at("2026-12-28T00:00:00Z"), // Monday, 2026-W53
        at("2026-12-31T23:59:59.999Z"),
        at("2027-01-01T00:00:00Z"),
        at("2027-01-03T23:59:59.999Z"), // Sunday, still 2026-W53
      ],
      maxCount: 1,
      keep: { weekly: 2, monthly: 2 },
      kept: ["2027-01-03T23:59:59.999Z", "2026-12-31T23:59:59.999Z", "2026-12-27T12:00:00.000Z"],
      deleted: ["2026-12-28T00:00:00.000Z", "2027-01-01T00:00:00.000Z"],
    },
    {
      title: "2020-W53 spans 2020-12-28 to 2021-01-03; 2021-01-04 starts 2021-W01",
      keys: [at("2020-12-27T09:00:00Z"), at("2020-12-31T09:00:00Z"), at("2021-01-03T09:00:00Z"), at("2021-01-04T09:00:00Z")],
      maxCount: 1,
      keep: { weekly: 3 },
      kept: ["2021-01-04T09:00:00.000Z", "2021-01-03T09:00:00.000Z", "2020-12-27T09:00:00.000Z"],
      deleted: ["2020-12-31T09:00:00.000Z"],
    },
    {
      title: "2024-12-30 (Monday) is in 2025-W01 with 2025-01-02, but in December for KEEP_MONTHLY",
      keys: [at("2024-12-29T09:00:00Z"), at("2024-12-30T09:00:00Z"), at("2025-01-02T09:00:00Z")],
      maxCount: 1,
      keep: { weekly: 2, monthly: 2 },
      kept: ["2025-01-02T09:00:00.000Z", "2024-12-30T09:00:00.000Z", "2024-12-29T09:00:00.000Z"],
      reasons: {
        "2025-01-02T09:00:00.000Z": ["last", "weekly", "monthly", "protected"],
        "2024-12-30T09:00:00.000Z": ["monthly"],
        "2024-12-29T09:00:00.000Z": ["weekly"],
      },
    },
    {
      title: "one backup a year in the same month: each is its own month",
      keys: [at("2024-01-20T09:00:00Z"), at("2025-01-15T09:00:00Z"), at("2026-01-10T09:00:00Z")],
      maxCount: 1,
      keep: { monthly: 2, weekly: 1 },
      kept: ["2026-01-10T09:00:00.000Z", "2025-01-15T09:00:00.000Z"],
      deleted: ["2024-01-20T09:00:00.000Z"],
    },
    {
      title: "leap day: 2028-02-29 is the newest of February",
      keys: [at("2028-02-28T12:00:00Z"), at("2028-02-29T12:00:00Z"), at("2028-03-01T00:00:00Z"), at("2028-03-01T06:00:00Z")],
      maxCount: 1,
      keep: { monthly: 2 },
      kept: ["2028-03-01T06:00:00.000Z", "2028-02-29T12:00:00.000Z"],
      deleted: ["2028-02-28T12:00:00.000Z", "2028-03-01T00:00:00.000Z"],
    },
    {
      title: "MAX_COUNT does not bound the total when a KEEP_* rule is set",
      keys: series("2026-01-15T00:00:00Z", "2026-07-15T00:00:00Z", 24 * HOUR),
      maxCount: 2,
      keep: { monthly: 5 },
      kept: [
        "2026-07-14T00:00:00.000Z",
        "2026-07-13T00:00:00.000Z",
        "2026-06-30T00:00:00.000Z",
        "2026-05-31T00:00:00.000Z",
        "2026-04-30T00:00:00.000Z",
        "2026-03-31T00:00:00.000Z",
      ],
    },
    {
      title: "rules larger than the history keep everything",
      keys: series("2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", 24 * HOUR),
      maxCount: 1,
      keep: { daily: 10, weekly: 10, monthly: 10 },
      kept: ["2026-01-03T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "2026-01-01T00:00:00.000Z"],
      deleted: [],
    },
    {
      title: "a skewed protected key is kept on top of the rules, and the newest overall stays",
      keys: series("2026-06-01T12:00:00Z", "2026-06-11T00:00:00Z", 24 * HOUR),
      maxCount: 1,
      keep: { daily: 2 },
      protect: at("2026-06-04T12:00:00Z"),
      kept: ["2026-06-10T12:00:00.000Z", "2026-06-09T12:00:00.000Z", "2026-06-04T12:00:00.000Z"],
      reasons: {
        "2026-06-10T12:00:00.000Z": ["last", "daily"],
        "2026-06-09T12:00:00.000Z": ["daily"],
        "2026-06-04T12:00:00.000Z": ["protected"],
      },
    },
  ];

  it.each(cases)("$title", (c) => {
    const p = plan(c.keys, c.maxCount, c.keep, c.protect);
    expect(isos(p.keep)).toEqual(c.kept);
    expect(p.keep.length + p.delete.length).toBe(new Set(c.keys).size);
    if (c.deleted) expect(isos(p.delete)).toEqual(c.deleted);
    for (const [time, reasons] of Object.entries(c.reasons ?? {})) {
      const kept = p.keep.find((k) => iso(k.key) === time);
      expect(kept, time).toBeDefined();
      expect(p.reasons.get(kept!.key), time).toEqual(reasons);
    }
    expect([...p.reasons.keys()].sort()).toEqual(p.keep.map((k) => k.key).sort());
  });

  it("plain and age-encrypted backups of one name share the rules (AGE_RECIPIENTS turned on mid-history)", () => {
    const plain = series("2026-01-01T06:00:00Z", "2026-01-06T00:00:00Z", 24 * HOUR);
    const sealed = ["2026-01-06T06:00:00Z", "2026-01-07T06:00:00Z"].map((t) => buildKey(PREFIX, NAME, new Date(t), 1, true).key);
    const p = plan([...plain, ...sealed], 1, { daily: 4 }, sealed[1]);
    expect(isos(p.keep)).toEqual(["2026-01-07T06:00:00.000Z", "2026-01-06T06:00:00.000Z", "2026-01-05T06:00:00.000Z", "2026-01-04T06:00:00.000Z"]);
    expect(p.keep.map((k) => k.encrypted)).toEqual([true, true, false, false]);
    expect(isos(p.delete)).toEqual(["2026-01-01T06:00:00.000Z", "2026-01-02T06:00:00.000Z", "2026-01-03T06:00:00.000Z"]);
  });

  it("counts kept backups per rule for the logs", () => {
    const p = plan(series("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z", HOUR), 24, { daily: 7, weekly: 4, monthly: 6 });
    expect(keptByRule(p)).toEqual({ last: 24, daily: 7, weekly: 4, monthly: 3, protected: 1 });
  });

  it("never deletes keys that are not ours, with GFS rules too", () => {
    const foreign = [
      `${PREFIX}app/notes.txt`,
      `${PREFIX}app/app-2026-02-31T03-00-00-000Z-000000.sqlite.gz`,
      `${PREFIX}app/old/${at("2026-01-01T00:00:00Z").split("/").pop()!}`,
      buildKey(PREFIX, "app2", new Date("2026-01-01T00:00:00Z"), 1).key,
    ];
    const ours = series("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", 24 * HOUR);
    const p = plan([...foreign, ...ours], 1, { weekly: 1 }, ours.at(-1));
    expect(new Set(p.ignored)).toEqual(new Set(foreign));
    expect(isos(p.keep)).toEqual(["2026-02-28T00:00:00.000Z"]);
    expect(p.delete).toHaveLength(ours.length - 1);
  });

  it("all KEEP_* 0 is exactly MAX_COUNT alone (the protected key counts against it)", () => {
    const keys = series("2026-01-01T00:00:00Z", "2026-01-11T00:00:00Z", 24 * HOUR);
    const protect = at("2026-01-04T00:00:00Z");
    const zero = plan(keys, 3, { daily: 0, weekly: 0, monthly: 0 }, protect);
    const none = planRetention({ prefix: PREFIX, name: NAME, keys, maxCount: 3, protect });
    expect(isos(zero.keep)).toEqual(["2026-01-10T00:00:00.000Z", "2026-01-09T00:00:00.000Z", "2026-01-04T00:00:00.000Z"]);
    expect(zero).toEqual(none);
    expect(zero.reasons.get(protect)).toEqual(["protected"]);
    expect(zero.reasons.get(at("2026-01-10T00:00:00Z"))).toEqual(["last"]);
  });

  it.each([
    { daily: -1 },
    { weekly: 1.5 },
    { monthly: Number.NaN },
    { daily: Number.POSITIVE_INFINITY },
  ] as Partial<KeepRules>[])("invalid rule %o throws naming it", (keep) => {
    expect(() => plan([at("2026-01-01T00:00:00Z")], 1, keep)).toThrow(/keep\.(daily|weekly|monthly)/);
  });
});
