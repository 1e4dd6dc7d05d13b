import { describe, expect, it } from "vitest";
import {
  BACKUP_EXTENSION,
  ENCRYPTED_EXTENSION,
  backupFolder,
  buildKey,
  createKeyFactory,
  formatStamp,
  newestFirst,
  parseFile,
  parseKey,
} from "../src/keys.js";
import { mulberry32 } from "./helpers/random.js";


const PREFIX = "backups/";
const WHEN = new Date("2026-11-23T10:42:36.123Z");
const VALID = "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz";
const VALID_FILE = "app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz";

describe("buildKey", () => {
  it("produces exactly the contract's example", () => {
    const k = buildKey(PREFIX, "app", WHEN, 0x9f3a1c);
    expect(k.key).toBe(VALID);
    expect(k.file).toBe(VALID_FILE);
    expect(k.name).toBe("app");
    expect(k.suffix).toBe("9f3a1c");
    expect(k.time.getTime()).toBe(WHEN.getTime());
  });

  it("matches the contract's shape for any name, time and suffix", () => {
    const shape = /^backups\/([a-z0-9][a-z0-9._-]{0,62})\/\1-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-[0-9a-f]{6}\.sqlite\.gz$/;
    const rnd = mulberry32(1);
    for (const name of ["app", "a", "my.db_1-x", "z".repeat(63)]) {
      for (let i = 0; i < 50; i++) {
        const time = new Date(Date.UTC(2000, 0, 1) + Math.floor(rnd() * 200 * 365 * 86_400_000));
        const k = buildKey(PREFIX, name, time, Math.floor(rnd() * 0x1000000));
        expect(k.key).toMatch(shape);
        expect(k.key.startsWith(backupFolder(PREFIX, name))).toBe(true);
        expect(k.key.endsWith(BACKUP_EXTENSION)).toBe(true);
      }
    }
  });

  it("zero-pads the suffix and uses UTC", () => {
    const k = buildKey("", "app", new Date("2026-01-02T03:04:05.006+02:00"), 0xa);
    expect(k.key).toBe("app/app-2026-01-02T01-04-05-006Z-00000a.sqlite.gz");
    expect(formatStamp(new Date(Date.UTC(2026, 0, 2, 1, 4, 5, 6)))).toBe("2026-01-02T01-04-05-006Z");
  });

  it.each([-1, 0x1000000, 1.5, Number.NaN])("rejects suffix %s", (suffix) => {
    expect(() => buildKey(PREFIX, "app", WHEN, suffix)).toThrow();
  });

  it.each(["App", "-app", "", "a/b", "a".repeat(64), "my app"])("rejects name %j", (name) => {
    expect(() => buildKey(PREFIX, name, WHEN, 1)).toThrow();
  });
});

describe("parseKey / parseFile", () => {
  it("parses the contract's example", () => {
    const k = parseKey(PREFIX, "app", VALID);
    expect(k).toEqual({ key: VALID, file: VALID_FILE, name: "app", time: WHEN, suffix: "9f3a1c", encrypted: false });
    expect(parseFile("app", VALID_FILE)).toEqual({ file: VALID_FILE, name: "app", time: WHEN, suffix: "9f3a1c", encrypted: false });
  });

  it("parses an age-encrypted backup's key (.sqlite.gz.age) as the same name's backup", () => {
    const k = parseKey(PREFIX, "app", `${VALID}.age`);
    expect(k).toEqual({ key: `${VALID}.age`, file: `${VALID_FILE}.age`, name: "app", time: WHEN, suffix: "9f3a1c", encrypted: true });
    expect(parseFile("app", `${VALID_FILE}.age`)?.encrypted).toBe(true);
  });

  it("round-trips buildKey for random names, times, suffixes and prefixes", () => {
    const rnd = mulberry32(42);
    const prefixes = ["backups/", "", "a/b/c/", "x!_.*'()-/"];
    const names = ["app", "a.b", "db_1", "x-y-z", "9"];
    for (let i = 0; i < 500; i++) {
      const prefix = prefixes[i % prefixes.length]!;
      const name = names[i % names.length]!;
      const time = new Date(Date.UTC(1970, 0, 1) + Math.floor(rnd() * 250 * 365 * 86_400_000));
      const encrypted = i % 3 === 0;
      const built = buildKey(prefix, name, time, Math.floor(rnd() * 0x1000000), encrypted);
      expect(built.key.endsWith(encrypted ? ENCRYPTED_EXTENSION : BACKUP_EXTENSION)).toBe(true);
      const parsed = parseKey(prefix, name, built.key);
      expect(parsed).toEqual(built);
      expect(parseFile(name, built.file)).toEqual({ file: built.file, name, time, suffix: built.suffix, encrypted });
    }
  });

  it("accepts a leap day and the edges of the day", () => {
    for (const iso of ["2028-02-29T00:00:00.000Z", "2026-12-31T23:59:59.999Z", "2026-01-01T00:00:00.000Z"]) {
      const k = buildKey(PREFIX, "app", new Date(iso), 0);
      expect(parseKey(PREFIX, "app", k.key)?.time.toISOString()).toBe(iso);
    }
  });

  const rejected: [why: string, key: string][] = [
    ["another name's folder (app2)", "backups/app2/app2-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["another name's file in our folder (app2)", "backups/app/app2-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["name with a dash continuation", "backups/app/app-x-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["wrong prefix", "other/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["no prefix", "app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["prefix nested deeper", "x/backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["nested folder", "backups/app/old/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["nested folder with the name", "backups/app/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["uppercase hex", "backups/app/app-2026-11-23T10-42-36-123Z-9F3A1C.sqlite.gz"],
    ["short hex", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1.sqlite.gz"],
    ["long hex", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c0.sqlite.gz"],
    ["non-hex suffix", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1g.sqlite.gz"],
    ["wrong extension .sqlite", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite"],
    ["wrong extension .db.gz", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.db.gz"],
    ["wrong extension .sqlite.gz.lock", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz.lock"],
    ["extra suffix", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz.tmp"],
    ["age without gz", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.age"],
    ["age twice", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz.age.age"],
    ["age uppercase", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz.AGE"],
    ["age then more", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz.age.tmp"],
    ["age without dot", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gzage"],
    ["trailing slash", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz/"],
    ["leading junk in file", "backups/app/xapp-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["impossible date 02-31", "backups/app/app-2026-02-31T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["impossible date 2027-02-29", "backups/app/app-2027-02-29T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["month 13", "backups/app/app-2026-13-01T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["month 00", "backups/app/app-2026-00-01T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["hour 24", "backups/app/app-2026-11-23T24-00-00-000Z-9f3a1c.sqlite.gz"],
    ["minute 60", "backups/app/app-2026-11-23T10-60-36-123Z-9f3a1c.sqlite.gz"],
    ["second 60", "backups/app/app-2026-11-23T10-42-60-123Z-9f3a1c.sqlite.gz"],
    ["ISO colons", "backups/app/app-2026-11-23T10:42:36.123Z-9f3a1c.sqlite.gz"],
    ["missing Z", "backups/app/app-2026-11-23T10-42-36-123-9f3a1c.sqlite.gz"],
    ["two-digit millis", "backups/app/app-2026-11-23T10-42-36-12Z-9f3a1c.sqlite.gz"],
    ["traversal in folder", "backups/app/../app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["traversal in file", "backups/app/../app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["traversal to another name", "backups/app/../other/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["url-encoded traversal", "backups/app/..%2Fapp-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["backslash", "backups/app/x\\app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz"],
    ["newline appended", "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz\n"],
    ["folder only", "backups/app/"],
    ["empty", ""],
  ];

  it.each(rejected)("rejects %s", (_why, key) => {
    expect(parseKey(PREFIX, "app", key)).toBeUndefined();
  });

  it("rejects the file part of each rejected key with parseFile when it is a single segment", () => {
    for (const [, key] of rejected) {
      if (!key.startsWith("backups/app/")) continue;
      const file = key.slice("backups/app/".length);
      expect(parseFile("app", file)).toBeUndefined();
    }
  });

  it("does not treat regex metacharacters in the name as wildcards", () => {
    const file = "a.b-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz";
    expect(parseFile("a.b", file)).toBeDefined();
    expect(parseFile("a.b", "aXb-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz")).toBeUndefined();
    expect(parseKey(PREFIX, "a.b", `backups/a.b/${file}`)).toBeDefined();
    expect(parseKey(PREFIX, "a.b", "backups/a.b/aXb-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz")).toBeUndefined();
    expect(parseKey(PREFIX, "a.b", "backups/aXb/aXb-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz")).toBeUndefined();
    // Prefixes are literal too.
    expect(parseKey("b.k/", "app", "bXk/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz")).toBeUndefined();
    // And the extension's dots are literal.
    expect(parseFile("app", "app-2026-11-23T10-42-36-123Z-9f3a1cXsqliteXgz")).toBeUndefined();
    expect(parseFile("app", "app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gzXage")).toBeUndefined();
  });

  it("a name does not match another name that extends it", () => {
    const ofApp2 = buildKey(PREFIX, "app2", WHEN, 1);
    const ofAppDash = buildKey(PREFIX, "app-1", WHEN, 1);
    expect(parseKey(PREFIX, "app", ofApp2.key)).toBeUndefined();
    expect(parseFile("app", ofApp2.file)).toBeUndefined();
    expect(parseFile("app", ofAppDash.file)).toBeUndefined();
    expect(parseFile("app-1", ofAppDash.file)).toBeDefined();
  });
});

describe("ordering", () => {
  it("lexicographic order of keys is chronological order over random dates", () => {
    const rnd = mulberry32(7);
    const times: number[] = [];
    const start = Date.UTC(1970, 0, 1);
    const span = Date.UTC(2200, 0, 1) - start;
    for (let i = 0; i < 5000; i++) times.push(start + Math.floor(rnd() * span));
    // A few clustered around the same second and millisecond as well.
    for (let i = 0; i < 500; i++) times.push(Date.UTC(2026, 10, 23, 10, 42, 36) + Math.floor(rnd() * 2000));
    const keys = times.map((t) => buildKey(PREFIX, "app", new Date(t), Math.floor(rnd() * 0x1000000)));
    const byString = [...keys].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const byTime = [...keys].sort((a, b) => a.time.getTime() - b.time.getTime() || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    expect(byString.map((k) => k.key)).toEqual(byTime.map((k) => k.key));
  });

  it("newestFirst sorts by key, newest first, without mutating its input", () => {
    const a = buildKey(PREFIX, "app", new Date("2026-01-01T00:00:00.000Z"), 5);
    const b = buildKey(PREFIX, "app", new Date("2026-01-01T00:00:00.001Z"), 0);
    const c = buildKey(PREFIX, "app", new Date("2027-01-01T00:00:00.000Z"), 0);
    const input = [b, c, a];
    expect(newestFirst(input).map((k) => k.key)).toEqual([c.key, b.key, a.key]);
    expect(input).toEqual([b, c, a]);
  });

  it("newestFirst orders plain and encrypted backups of one name together by time", () => {
    const plainOld = buildKey(PREFIX, "app", new Date("2026-01-01T00:00:00.000Z"), 0xffffff);
    const encMid = buildKey(PREFIX, "app", new Date("2026-01-01T00:00:00.001Z"), 0, true);
    const plainNew = buildKey(PREFIX, "app", new Date("2026-01-02T00:00:00.000Z"), 0);
    const encNew = buildKey(PREFIX, "app", new Date("2026-01-03T00:00:00.000Z"), 0, true);
    expect(newestFirst([plainOld, encNew, plainNew, encMid]).map((k) => k.key)).toEqual([encNew.key, plainNew.key, encMid.key, plainOld.key]);
  });
});

describe("createKeyFactory", () => {
  it("10,000 keys in the same millisecond are unique and in creation order", () => {
    const next = createKeyFactory(mulberry32(3), PREFIX, "app");
    const keys: string[] = [];
    for (let i = 0; i < 10_000; i++) keys.push(next(WHEN).key);
    expect(new Set(keys).size).toBe(10_000);
    for (let i = 1; i < keys.length; i++) expect(keys[i - 1]! < keys[i]!).toBe(true);
    for (const k of keys) expect(parseKey(PREFIX, "app", k)?.time.getTime()).toBe(WHEN.getTime());
  });

  it("stays unique and ordered even when the random source returns its largest value", () => {
    const next = createKeyFactory(() => 0.9999999999, PREFIX, "app");
    const keys = Array.from({ length: 10_000 }, () => next(WHEN).key);
    expect(new Set(keys).size).toBe(10_000);
    expect([...keys].sort()).toEqual(keys);
  });

  it("keys across a millisecond boundary stay ordered whatever the random suffixes", () => {
    // High suffix in the first millisecond, lowest in the next.
    const values = [0.4999999, 0];
    const next = createKeyFactory(() => values.shift() ?? 0, PREFIX, "app");
    const t0 = new Date(Date.UTC(2026, 10, 23, 10, 42, 36, 999));
    const t1 = new Date(t0.getTime() + 1);
    const first = [next(t0).key, next(t0).key, next(t0).key];
    const second = [next(t1).key, next(t1).key];
    const all = [...first, ...second];
    expect([...all].sort()).toEqual(all);
    expect(second[0]!.includes("2026-11-23T10-42-37-000Z")).toBe(true);
  });

  it("many timestamps in sequence give strictly increasing keys", () => {
    const rnd = mulberry32(11);
    const next = createKeyFactory(rnd, PREFIX, "app");
    let t = Date.UTC(2026, 0, 1);
    const keys: string[] = [];
    for (let i = 0; i < 5000; i++) {
      t += Math.floor(rnd() * 3); // 0, 1 or 2 ms later: repeats and boundaries
      keys.push(next(new Date(t)).key);
    }
    for (let i = 1; i < keys.length; i++) expect(keys[i - 1]! < keys[i]!).toBe(true);
  });

  it("different factories with different random sources do not collide in practice", () => {
    const all = new Set<string>();
    let total = 0;
    for (let f = 0; f < 100; f++) {
      const next = createKeyFactory(mulberry32(1000 + f), PREFIX, "app");
      for (let i = 0; i < 5; i++) {
        all.add(next(WHEN).key);
        total += 1;
      }
    }
    expect(all.size).toBe(total);
  });

  it("makes .sqlite.gz.age keys when asked to, unique and ordered like plain ones", () => {
    const next = createKeyFactory(mulberry32(5), PREFIX, "app", true);
    const keys = Array.from({ length: 1000 }, () => next(WHEN));
    expect(new Set(keys.map((k) => k.key)).size).toBe(1000);
    for (const k of keys) {
      expect(k.encrypted).toBe(true);
      expect(k.key.endsWith(ENCRYPTED_EXTENSION)).toBe(true);
      expect(parseKey(PREFIX, "app", k.key)).toEqual(k);
    }
    expect([...keys.map((k) => k.key)].sort()).toEqual(keys.map((k) => k.key));
  });

  it("uses the random source for the first key of each millisecond", () => {
    const a = createKeyFactory(() => 0, PREFIX, "app")(WHEN);
    const b = createKeyFactory(() => 0.25, PREFIX, "app")(WHEN);
    expect(a.suffix).toBe("000000");
    expect(b.suffix).not.toBe(a.suffix);
  });
});
