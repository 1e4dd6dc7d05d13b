/**
 * `verify` and `restore` as users run them: a separate process, a backup made by the
 * `backup` command, exit codes, one-line errors, and a target that a damaged backup never
 * replaces.
 */
import { execFileSync } from "node:child_process";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flipMiddleByte, putBackup, replaceBody } from "./helpers/backups.js";
import { cli, lastLine, type Run } from "./helpers/cli.js";
import { corruptIndexPage, dumpTables, makeDatabase, sha256, sqliteCli, writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
let sourcePath: string;
let source: Uint8Array;
let other: Uint8Array;
const sqlite3 = sqliteCli();

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-cli-restore-"));
  sourcePath = join(dir, "shop.db");
  source = await writeDatabase(sourcePath, { rows: 300, targetBytes: 300_000 });
  other = await makeDatabase({ rows: 5 });
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The tool's environment for one backup name (the source only matters to `backup`). */
const envFor = (name: string) => s3.env({ BACKUP_SOURCE: sourcePath, BACKUP_NAME: name });

async function backup(name: string): Promise<{ key: string; file: string; sha256: string }> {
  const run = await cli(["backup"], envFor(name));
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as { key: string; file: string; sha256: string };
}

let n = 0;
async function folder(): Promise<string> {
  const f = join(dir, `t${n++}`);
  await mkdir(f);
  return f;
}

const bytesOf = async (path: string) => new Uint8Array(await readFile(path));

function expectError(run: Run, code: number, pattern: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  expect(lastLine(run)).toMatch(pattern);
  expect(run.stdout).toBe("");
  expect(run.stderr).not.toMatch(/\n\s+at /); // no stack traces
  expect(run.stderr).not.toContain(s3.secretAccessKey === "S3RVER" ? "\u0000" : s3.secretAccessKey);
}

describe("cli verify and restore", () => {
  it("a backup gzipped as several members on the thread pool gunzips (system gzip) and restores to the exact source", async () => {
    const bigPath = join(dir, "big.db");
    const big = await writeDatabase(bigPath, { rows: 500, targetBytes: 7 * 1024 * 1024 });
    const env = s3.env({ BACKUP_SOURCE: bigPath, BACKUP_NAME: "big" });
    const run = await cli(["backup"], env);
    expect(run.code, run.stderr).toBe(0);
    const manifest = JSON.parse(run.stdout) as { key: string };
    const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: manifest.key }));
    const gz = Buffer.from(await object.Body!.transformToByteArray());
    // One member per 2 MiB block: each starts with the gzip magic and deflate method, and
    // has its own trailer; the stream decompresses as one.
    let members = 0;
    for (let i = gz.indexOf(Buffer.from([0x1f, 0x8b, 8])); i >= 0; i = gz.indexOf(Buffer.from([0x1f, 0x8b, 8]), i + 1)) members++;
    expect(members).toBeGreaterThanOrEqual(Math.ceil(big.length / (2 * 1024 * 1024)));
    expect(sha256(execFileSync("gzip", ["-dc"], { input: gz, maxBuffer: 64 * 1024 * 1024 }))).toBe(sha256(big));

    const target = join(await folder(), "big.db");
    const restore = await cli(["restore", "latest", "--to", target], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(sha256(await bytesOf(target))).toBe(sha256(big));
    expect((await cli(["verify", "latest"], env)).code).toBe(0);
  });

  it("backup → restore latest → the same database; verify latest exits 0", async () => {
    const manifest = await backup("shop");
    expect(manifest.sha256).toBe(sha256(source));
    const f = await folder();
    const target = join(f, "new.db");

    const restore = await cli(["restore", "latest", "--to", target], envFor("shop"));
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toBe(`restored ${manifest.key} (${source.length} bytes, sha256 ${manifest.sha256}) to ${target}\n`);
    for (const msg of ["restore started", "restore downloaded", "restore verified", "restored"]) expect(restore.stderr).toContain(`"msg":"${msg}"`);
    const restored = await bytesOf(target);
    expect(sha256(restored)).toBe(sha256(source));
    expect(await dumpTables(restored)).toEqual(await dumpTables(source));
    if (sqlite3) {
      expect(sqlite3(target, ".dump")).toBe(sqlite3(sourcePath, ".dump"));
      expect(sqlite3(target, "PRAGMA integrity_check")).toBe("ok");
    }
    expect(await readdir(f)).toEqual(["new.db"]);

    const verify = await cli(["verify", "latest"], envFor("shop"));
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toBe(
      `ok ${manifest.key}: ${source.length} bytes, sha256 ${manifest.sha256} matches, ${source.length / 4096} pages of 4096 bytes, structural check ok\n`,
    );

    const json = await cli(["verify", manifest.file, "--json"], envFor("shop"));
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ key: manifest.key, file: manifest.file, bytes: source.length, sha256: manifest.sha256, pageSize: 4096, integrity: "ok", check: "structure" });

    // Without an argument both mean the latest backup.
    const bare = await cli(["verify"], envFor("shop"));
    expect(bare.code).toBe(0);
    expect(bare.stdout).toBe(verify.stdout);
  });

  it("restore refuses an existing target without --force (TARGET_EXISTS) and leaves it untouched", async () => {
    await backup("keep");
    const f = await folder();
    const target = join(f, "app.db");
    await writeFile(target, other);
    const run = await cli(["restore", "--to", target], envFor("keep"));
    expectError(run, 1, /^error \[TARGET_EXISTS\]: .*app\.db already exists \(\d+ bytes\); use --force to replace it/);
    expect(sha256(await bytesOf(target))).toBe(sha256(other));
    expect(await readdir(f)).toEqual(["app.db"]);
  });

  it("--if-missing: a present target is kept (exit 0), an absent one is restored", async () => {
    const manifest = await backup("boot");
    const f = await folder();
    const present = join(f, "present.db");
    await writeFile(present, other);
    const kept = await cli(["restore", "latest", "--to", present, "--if-missing"], envFor("boot"));
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toBe(`${present} exists; nothing restored\n`);
    expect(sha256(await bytesOf(present))).toBe(sha256(other));
    const keptJson = await cli(["restore", "--to", present, "--if-missing", "--json"], envFor("boot"));
    expect(keptJson.code, keptJson.stderr).toBe(0);
    expect(JSON.parse(keptJson.stdout)).toEqual({ restored: false, target: present, reason: "exists" });

    const absent = join(f, "absent.db");
    const restored = await cli(["restore", "--to", absent, "--if-missing"], envFor("boot"));
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`restored ${manifest.key}`);
    expect(sha256(await bytesOf(absent))).toBe(sha256(source));
    expect((await readdir(f)).sort()).toEqual(["absent.db", "present.db"]);
  });

  it("--force replaces the target and removes its stale -wal and -shm", async () => {
    const manifest = await backup("force");
    const f = await folder();
    const target = join(f, "app.db");
    await writeFile(target, other);
    await writeFile(`${target}-wal`, new Uint8Array(4096).fill(3));
    await writeFile(`${target}-shm`, new Uint8Array(32768).fill(4));
    const run = await cli(["restore", manifest.file, "--to", target, "--force"], envFor("force"));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`restored ${manifest.key} (${source.length} bytes, sha256 ${manifest.sha256}) to ${target} (replaced the existing file)\n`);
    expect(run.stderr).toContain('"msg":"removed stale companion files of the target"');
    expect(await readdir(f)).toEqual(["app.db"]);
    expect(sha256(await bytesOf(target))).toBe(sha256(source));
    if (sqlite3) expect(sqlite3(target, "PRAGMA integrity_check")).toBe("ok");
  });

  const tampered: { label: string; name: string; change: (body: Uint8Array) => Uint8Array; verify: RegExp }[] = [
    { label: "one flipped byte in the gzip body", name: "flip", change: flipMiddleByte, verify: /^error \[VERIFY_FAILED\]: verification of backups\/flip\/flip-.* failed: it (does not decompress|decompresses to)/ },
    {
      label: "valid gzip, content other than the metadata's sha256",
      name: "swap",
      change: () => {
        const changed = source.slice();
        changed[source.length - 50] = changed[source.length - 50]! ^ 0x01;
        return gzipSync(changed);
      },
      verify: /^error \[VERIFY_FAILED\]: verification of .* failed: the sha256 of its \d+ bytes is [0-9a-f]{64}, its metadata says [0-9a-f]{64}/,
    },
  ];
  for (const t of tampered) {
    it(`${t.label}: verify exits 1 naming it; restore --force leaves the target and no temp file`, async () => {
      const manifest = await backup(t.name);
      await replaceBody(s3, manifest.key, t.change);

      expectError(await cli(["verify", "latest"], envFor(t.name)), 1, t.verify);

      const f = await folder();
      const target = join(f, "app.db");
      await writeFile(target, other);
      const run = await cli(["restore", "latest", "--to", target, "--force"], envFor(t.name));
      expectError(run, 1, t.verify);
      expect(run.stderr).toContain('"msg":"restore failed; the target was not changed"');
      expect(sha256(await bytesOf(target))).toBe(sha256(other));
      expect(await readdir(f)).toEqual(["app.db"]);
    });
  }

  it("a corrupt database inside a well-formed backup: verify exits 1 (SQLITE_CORRUPT), restore refuses", async () => {
    const corrupt = await corruptIndexPage(source);
    await putBackup(s3, { name: "corrupt", image: corrupt });
    expectError(await cli(["verify"], envFor("corrupt")), 1, /^error \[SQLITE_CORRUPT\]: backup .* failed the structural check: Tree \d+ page \d+: /);

    const f = await folder();
    const target = join(f, "app.db");
    expectError(await cli(["restore", "--to", target], envFor("corrupt")), 1, /^error \[SQLITE_CORRUPT\]/);
    await writeFile(target, other);
    expectError(await cli(["restore", "--to", target, "--force"], envFor("corrupt")), 1, /^error \[SQLITE_CORRUPT\]/);
    expect(sha256(await bytesOf(target))).toBe(sha256(other));
    expect(await readdir(f)).toEqual(["app.db"]);
  });

  it("restore into a missing directory is a clear error", async () => {
    await backup("nodir");
    const target = join(dir, "no", "such", "dir", "app.db");
    expectError(
      await cli(["restore", "--to", target], envFor("nodir")),
      1,
      new RegExp(`^error \\[TARGET_UNWRITABLE\\]: cannot restore to ${target.replace(/[/.]/g, "\\$&")}: directory .*dir does not exist \\(create it first\\)\\.$`),
    );
  });

  it("an invalid or unknown backup file name is named by verify and restore", async () => {
    await backup("names");
    const f = await folder();
    const target = join(f, "app.db");
    const runs = await Promise.all([
      cli(["verify", "../../etc/passwd"], envFor("names")),
      cli(["restore", "../../etc/passwd", "--to", target], envFor("names")),
      cli(["verify", "names-2020-01-01T00-00-00-000Z-000000.sqlite.gz"], envFor("names")),
      cli(["restore", "names-2020-01-01T00-00-00-000Z-000000.sqlite.gz", "--to", target], envFor("names")),
      cli(["verify"], envFor("never-backed-up")),
    ]);
    expectError(runs[0]!, 1, /^error \[INVALID_BACKUP_FILE\]: "\.\.\/\.\.\/etc\/passwd" is not a backup file name of "names"/);
    expectError(runs[1]!, 1, /^error \[INVALID_BACKUP_FILE\]/);
    expectError(runs[2]!, 1, /^error \[BACKUP_NOT_FOUND\]: backup names-2020-01-01T00-00-00-000Z-000000\.sqlite\.gz does not exist/);
    expectError(runs[3]!, 1, /^error \[BACKUP_NOT_FOUND\]/);
    expectError(runs[4]!, 1, /^error \[BACKUP_NOT_FOUND\]: there are no backups of "never-backed-up"/);
    expect(await readdir(f)).toEqual([]);
  });

  it("usage errors exit 2 before touching anything", async () => {
    const f = await folder();
    const target = join(f, "app.db");
    const env = envFor("usage");
    const runs = await Promise.all([
      cli(["restore", "latest"], env),
      cli(["restore", "--to", ""], env),
      cli(["restore", "--to", target, "--force", "--if-missing"], env),
      cli(["verify", "a", "b"], env),
      cli(["verify", "--to", target], env),
    ]);
    expectError(runs[0]!, 2, /^error: restore needs --to PATH/);
    expectError(runs[1]!, 2, /^error: restore needs --to PATH/);
    expectError(runs[2]!, 2, /^error: --force and --if-missing contradict each other/);
    expectError(runs[3]!, 2, /^error: verify takes one backup/);
    expectError(runs[4]!, 2, /^error: --to, --force and --if-missing belong to restore/);
    expect(await readdir(f)).toEqual([]);

    const help = await cli(["--help"], env);
    expect(help.stdout).toMatch(/verify \[file\|latest\]/);
    expect(help.stdout).toMatch(/restore \[file\|latest\] --to PATH \[--force \| --if-missing\]/);
  });
});
