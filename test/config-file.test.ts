/**
 * `--config FILE` (functions/config-file.ts): the file's keys are the environment's names plus
 * `databases`; the environment overrides it; errors name the file, the key and what is
 * accepted, and never echo a value. Then the CLI with a real file against a real S3 server.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../functions/cli.js";
import { configFileEnv, readConfigFile, withConfigFile } from "../functions/config-file.js";
import { BackupError } from "../src/errors.js";
import { writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const F = "/etc/seb.json";

function invalid(fn: () => unknown): BackupError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("CONFIG_INVALID");
    return err as BackupError;
  }
  throw new Error("expected CONFIG_INVALID");
}

describe("configFileEnv", () => {
  it("takes the environment's names, numbers and booleans as strings, and databases as BACKUP_SOURCES", () => {
    const databases = [
      { name: "app", source: "/data/app.db" },
      { name: "media", source: "s3://app-data/media.db", maxCount: 3 },
    ];
    expect(configFileEnv({ S3_BUCKET: "backups", MAX_COUNT: 7, SKIP_UNCHANGED: true, databases }, F)).toEqual({
      S3_BUCKET: "backups",
      MAX_COUNT: "7",
      SKIP_UNCHANGED: "true",
      BACKUP_SOURCES: JSON.stringify(databases),
    });
    expect(configFileEnv({ BACKUP_SOURCES: databases }, F)).toEqual({ BACKUP_SOURCES: JSON.stringify(databases) });
  });

  it("refuses an unknown key, naming the file, the key and the accepted keys", () => {
    const err = invalid(() => configFileEnv({ S3_BUKET: "backups" }, F));
    expect(err.message).toContain(`--config ${F}: "S3_BUKET" is not a setting`);
    expect(err.message).toContain("accepted: databases, BACKUP_SOURCE,");
    expect(err.message).toContain("S3_BUCKET");
  });

  it("does not echo a key that looks like a value, nor any value", () => {
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    expect(invalid(() => configFileEnv({ [secret]: "x" }, F)).message).not.toContain(secret);
    const err = invalid(() => configFileEnv({ S3_SECRET_ACCESS_KEY: { value: secret } }, F));
    expect(err.message).toBe(`--config ${F}: S3_SECRET_ACCESS_KEY must be a string, a number or a boolean (got object).`);
  });

  it("refuses a file that is not an object, databases that are not a list, and databases given twice", () => {
    expect(invalid(() => configFileEnv([1, 2], F)).message).toContain("must hold a JSON object of settings");
    expect(invalid(() => configFileEnv("BACKUP_SOURCE=/x", F)).message).toContain("must hold a JSON object of settings");
    expect(invalid(() => configFileEnv({ databases: { app: "/x" } }, F)).message).toContain(`"databases" must be a list`);
    expect(invalid(() => configFileEnv({ databases: [], BACKUP_SOURCES: "[]" }, F)).message).toContain("not both");
    expect(invalid(() => configFileEnv({ MAX_COUNT: null }, F)).message).toContain("MAX_COUNT must be a string, a number or a boolean (got null)");
  });
});

describe("withConfigFile", () => {
  const file = { path: F, env: { S3_BUCKET: "from-file", MAX_COUNT: "3", BACKUP_SOURCES: '[{"name":"a","source":"/a.db"}]' } };
  it("lets the environment override the file", () => {
    expect(withConfigFile(file, { MAX_COUNT: "9" })).toMatchObject({ S3_BUCKET: "from-file", MAX_COUNT: "9", BACKUP_SOURCES: file.env.BACKUP_SOURCES });
  });
  it("drops the file's databases when the environment names a database", () => {
    const env = withConfigFile(file, { BACKUP_SOURCE: "/b.db" });
    expect(env.BACKUP_SOURCE).toBe("/b.db");
    expect(env.BACKUP_SOURCES).toBeUndefined();
    expect(env.S3_BUCKET).toBe("from-file");
  });
});

describe("readConfigFile", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "seb-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  it("names a missing file and a file that is not JSON", async () => {
    const missing = join(dir, "nope.json");
    await expect(readConfigFile(missing)).rejects.toThrow(`--config ${missing}: cannot read it (no such file).`);
    const broken = join(dir, "broken.json");
    await writeFile(broken, '{"S3_BUCKET": "x",}');
    await expect(readConfigFile(broken)).rejects.toThrow(new RegExp(`^--config ${broken}: not valid JSON \\(`));
  });
});

describe("sqlite-edge-backup --config FILE", () => {
  let s3: TestStore;
  let dir: string;
  beforeAll(async () => {
    s3 = await startTestStore();
    dir = await mkdtemp(join(tmpdir(), "seb-config-cli-"));
  });
  afterAll(async () => {
    await s3?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("backs up the databases the file lists, with the environment overriding it; a bad value in the file is named with the file", async () => {
    await writeDatabase(join(dir, "app.db"), { rows: 40 });
    await writeDatabase(join(dir, "media.db"), { rows: 60 });
    const settings = { ...s3.env(), LOCK: "off", databases: [{ name: "app", source: join(dir, "app.db") }, { name: "media", source: join(dir, "media.db") }] };
    const path = join(dir, "seb.json");
    await writeFile(path, JSON.stringify(settings, null, 2));

    expect(await main(["backup", "--config", path], {})).toBe(0);
    expect(await s3.keys("backups/app/")).toHaveLength(1);
    expect(await s3.keys("backups/media/")).toHaveLength(1);

    // The environment wins: one database, named by BACKUP_SOURCE, instead of the file's list.
    await writeDatabase(join(dir, "solo.db"), { rows: 10 });
    expect(await main(["backup", "--config", path], { BACKUP_SOURCE: join(dir, "solo.db"), BACKUP_NAME: "solo" })).toBe(0);
    expect(await s3.keys("backups/solo/")).toHaveLength(1);
    expect(await s3.keys("backups/app/")).toHaveLength(1);

    // A bad value from the file: the error names the file and the setting; the same value
    // overridden by the environment is no error.
    await writeFile(path, JSON.stringify({ ...settings, GZIP_LEVEL: 42 }));
    const err = await main(["backup", "--config", path], {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("CONFIG_INVALID");
    expect((err as BackupError).message).toMatch(new RegExp(`^--config ${path}: .*GZIP_LEVEL`));
    expect((err as BackupError).message).not.toContain(s3.secretAccessKey);
    expect(await main(["list", "--json", "--config", path, "--name", "app"], { GZIP_LEVEL: "1" })).toBe(0);
  });
});
