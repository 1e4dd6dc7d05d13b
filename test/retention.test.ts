import { describe, expect, it } from "vitest";
import { buildKey, parseKey } from "../src/keys.js";
import { planRetention, type RetentionPlan } from "../src/retention.js";
import { mulberry32 } from "./helpers/random.js";


const PREFIX = "backups/";
const NAME = "app";
const DAY0 = Date.UTC(2026, 0, 1, 3, 0, 0);

/** Key of backup number `day` (0 = oldest) of `name`. */
function key(day: number, name = NAME, suffix = 0x9f3a1c): string {
  return buildKey(PREFIX, name, new Date(DAY0 + day * 86_400_000), suffix).key;
}

const keysOf = (list: { key: string }[]) => list.map((k) => k.key);

function plan(keys: readonly string[], maxCount: number, protect: string): RetentionPlan {
  return planRetention({ prefix: PREFIX, name: NAME, keys, maxCount, protect });
}

const FOREIGN = [
  key(0, "app2"),
  `${PREFIX}app/app2-2026-01-01T03-00-00-000Z-000000.sqlite.gz`,
  `${PREFIX}app/notes.txt`,
  `${PREFIX}app/.lock`,
  `${PREFIX}app/app.lock`,
  `${PREFIX}app/${key(0).split("/").pop()!}.lock`,
  `${PREFIX}app/old/${key(0).split("/").pop()!}`,
  `${PREFIX}app/app-2026-02-31T03-00-00-000Z-000000.sqlite.gz`,
  `${PREFIX}app/app-2026-01-01T03-00-00-000Z-ABCDEF.sqlite.gz`,
  `other/app/${key(0).split("/").pop()!}`,
  "",
];

describe("planRetention", () => {
  type Case = {
    title: string;
    keys: string[];
    maxCount: number;
    protect: string;
    keep: string[];
    delete: string[];
    ignored?: string[];
  };
  const cases: Case[] = [
    {
      title: "fewer than maxCount: nothing deleted",
      keys: [key(0), key(1), key(2)],
      maxCount: 7,
      protect: key(2),
      keep: [key(2), key(1), key(0)],
      delete: [],
    },
    {
      title: "exactly maxCount: nothing deleted",
      keys: [key(0), key(1), key(2)],
      maxCount: 3,
      protect: key(2),
      keep: [key(2), key(1), key(0)],
      delete: [],
    },
    {
      title: "5 with maxCount 3: the 2 oldest deleted, oldest first",
      keys: [key(2), key(0), key(4), key(1), key(3)],
      maxCount: 3,
      protect: key(4),
      keep: [key(4), key(3), key(2)],
      delete: [key(0), key(1)],
    },
    {
      title: "maxCount 1 keeps only the protected key",
      keys: [key(0), key(1), key(2), key(3)],
      maxCount: 1,
      protect: key(3),
      keep: [key(3)],
      delete: [key(0), key(1), key(2)],
    },
    {
      title: "maxCount 1 with a skewed clock keeps the protected (older) key only",
      keys: [key(0), key(1), key(5)],
      maxCount: 1,
      protect: key(1),
      keep: [key(1)],
      delete: [key(0), key(5)],
    },
    {
      title: "protected key kept although others are 'newer' (skewed clock); kept count stays maxCount",
      keys: [key(0), key(1), key(2), key(3), key(10), key(11)],
      maxCount: 3,
      protect: key(3),
      keep: [key(11), key(10), key(3)],
      delete: [key(0), key(1), key(2)],
    },
    {
      title: "protected key is the oldest of all",
      keys: [key(0), key(1), key(2), key(3), key(4)],
      maxCount: 2,
      protect: key(0),
      keep: [key(4), key(0)],
      delete: [key(1), key(2), key(3)],
    },
    {
      title: "protected key absent from the listing: keep maxCount of the others",
      keys: [key(0), key(1), key(2), key(3), key(4)],
      maxCount: 3,
      protect: key(9),
      keep: [key(4), key(3), key(2)],
      delete: [key(0), key(1)],
    },
    {
      title: "duplicate keys in the input are counted once",
      keys: [key(0), key(1), key(1), key(2), key(2), key(2), key(0)],
      maxCount: 2,
      protect: key(2),
      keep: [key(2), key(1)],
      delete: [key(0)],
    },
    {
      title: "same millisecond, different suffixes: suffix order decides",
      keys: [key(1, NAME, 0x000001), key(1, NAME, 0x000002), key(1, NAME, 0x000003)],
      maxCount: 2,
      protect: key(1, NAME, 0x000003),
      keep: [key(1, NAME, 0x000003), key(1, NAME, 0x000002)],
      delete: [key(1, NAME, 0x000001)],
    },
    {
      title: "foreign keys are ignored and never deleted",
      keys: [...FOREIGN, key(0), key(1), key(2)],
      maxCount: 1,
      protect: key(2),
      keep: [key(2)],
      delete: [key(0), key(1)],
      ignored: FOREIGN,
    },
    {
      title: "only foreign keys: nothing to do",
      keys: FOREIGN,
      maxCount: 1,
      protect: key(0),
      keep: [],
      delete: [],
      ignored: FOREIGN,
    },
    {
      title: "empty listing",
      keys: [],
      maxCount: 3,
      protect: key(0),
      keep: [],
      delete: [],
    },
  ];

  it.each(cases)("$title", (c) => {
    const p = plan(c.keys, c.maxCount, c.protect);
    expect(keysOf(p.keep)).toEqual(c.keep);
    expect(keysOf(p.delete)).toEqual(c.delete);
    expect([...p.ignored].sort()).toEqual([...new Set(c.ignored ?? [])].sort());
  });

  it("returns parsed keys (name, time, suffix) in keep and delete", () => {
    const p = plan([key(0), key(1)], 1, key(1));
    expect(p.delete[0]).toEqual(parseKey(PREFIX, NAME, key(0)));
    expect(p.keep[0]).toEqual(parseKey(PREFIX, NAME, key(1)));
  });

  it("a protected key that is not ours is not kept, and the others follow maxCount", () => {
    const junk = `${PREFIX}app/app.lock`;
    const p = plan([junk, key(0), key(1), key(2)], 2, junk);
    expect(keysOf(p.keep)).toEqual([key(2), key(1)]);
    expect(keysOf(p.delete)).toEqual([key(0)]);
    expect(p.ignored).toEqual([junk]);
  });

  it("does not mutate its input", () => {
    const keys = [key(3), key(0), key(2), key(1)];
    const copy = [...keys];
    plan(keys, 2, key(3));
    expect(keys).toEqual(copy);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("maxCount %s throws", (maxCount) => {
    expect(() => plan([key(0)], maxCount, key(0))).toThrow(/maxCount/);
  });
});

describe("planRetention property test", () => {
  const JUNK = [
    `${PREFIX}app/readme.txt`,
    `${PREFIX}app/.lock`,
    `${PREFIX}app/app.lock`,
    `${PREFIX}app/sub/`,
    `${PREFIX}app2/`,
    `${PREFIX}app-old/x`,
    "random",
  ];

  it("holds its invariants over 200 random listings", () => {
    const rnd = mulberry32(20261123);
    const int = (n: number) => Math.floor(rnd() * n);
    for (let round = 0; round < 200; round++) {
      const keys: string[] = [];
      const ourCount = int(25);
      for (let i = 0; i < ourCount; i++) {
        // Few distinct days so same-day / same-ms keys happen too.
        const t = DAY0 + int(40) * 86_400_000 + (int(3) === 0 ? 0 : int(1000));
        keys.push(buildKey(PREFIX, NAME, new Date(t), int(0x1000000)).key);
      }
      for (let i = int(4); i > 0; i--) keys.push(JUNK[int(JUNK.length)]!);
      for (let i = int(4); i > 0; i--) {
        const ours = keys[int(keys.length)];
        if (ours !== undefined) keys.push(`${ours}.tmp`, ours.replace(`${PREFIX}app/`, `${PREFIX}app/nested/`));
      }
      for (let i = int(3); i > 0; i--) keys.push(buildKey(PREFIX, "app2", new Date(DAY0 + int(40) * 86_400_000), int(100)).key);
      for (let i = int(3); i > 0 && keys.length > 0; i--) keys.push(keys[int(keys.length)]!); // duplicates
      // Shuffle.
      for (let i = keys.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [keys[i], keys[j]] = [keys[j]!, keys[i]!];
      }

      const ours = [...new Set(keys.filter((k) => parseKey(PREFIX, NAME, k) !== undefined))];
      const protectPresent = ours.length > 0 && int(5) !== 0;
      const protect = protectPresent
        ? ours[int(ours.length)]!
        : buildKey(PREFIX, NAME, new Date(DAY0 + int(60) * 86_400_000), int(0x1000000)).key;
      const maxCount = 1 + int(10);

      const p = planRetention({ prefix: PREFIX, name: NAME, keys, maxCount, protect });
      const kept = keysOf(p.keep);
      const deleted = keysOf(p.delete);
      const ctx = JSON.stringify({ round, maxCount, protect, keys });

      // Never deletes the protected key or anything that is not exactly ours.
      expect(deleted, ctx).not.toContain(protect);
      for (const d of deleted) expect(parseKey(PREFIX, NAME, d), ctx).toBeDefined();
      for (const i of p.ignored) expect(parseKey(PREFIX, NAME, i), ctx).toBeUndefined();
      // Ignored is exactly the foreign keys, each once.
      expect(new Set(p.ignored), ctx).toEqual(new Set(keys.filter((k) => parseKey(PREFIX, NAME, k) === undefined)));
      expect(p.ignored.length, ctx).toBe(new Set(p.ignored).size);

      // deleted ∪ kept == ours, disjoint, no duplicates.
      expect(new Set([...kept, ...deleted]), ctx).toEqual(new Set(ours));
      expect(kept.length + deleted.length, ctx).toBe(ours.length);

      // Counts.
      if (protectPresent) {
        expect(kept, ctx).toContain(protect);
        expect(kept.length, ctx).toBe(Math.min(maxCount, ours.length));
      } else {
        expect(kept.length, ctx).toBe(Math.min(maxCount, ours.length));
      }

      // Every deleted key is older than every kept key except the protected one.
      const keptOthers = kept.filter((k) => k !== protect);
      for (const d of deleted) {
        for (const k of keptOthers) expect(d < k, ctx).toBe(true);
      }

      // Orders: keep newest first, delete oldest first.
      expect(kept, ctx).toEqual([...kept].sort().reverse());
      expect(deleted, ctx).toEqual([...deleted].sort());
    }
  });
});
