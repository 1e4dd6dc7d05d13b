/**
 * `restoreBackup` with the Node file system and a real S3 server: the target is replaced
 * only by a proved copy, never by a damaged one, and a failed restore leaves nothing behind.
 */
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fsError, nodeRestoreFiles } from "../functions/node-restore-files.js";
import { createNodeRuntime } from "../functions/node-runtime.js";
import { jsonLogger } from "../src/log.js";
import { restoreBackup, splitPath, type RestoreFiles, type RestoreOptions } from "../src/restore.js";
import type { Runtime } from "../src/runtime.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { flipMiddleByte, putBackup, replaceBody } from "./helpers/backups.js";
import { corruptIndexPage, corruptTableLeaf, dumpTables, integrityCheck, makeDatabase, quickCheck, sha256 } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";

let s3: TestStore;
let store: BackupStore;
let runtime: Runtime;
let dir: string;
let image: Uint8Array;
let other: Uint8Array;
const logLines = capturedLines("restore log");

beforeAll(async () => {
  s3 = await startTestStore();
  store = createS3Store({ endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, prefix: "backups/", accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, forcePathStyle: true });
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line) }));
  dir = await mkdtemp(join(tmpdir(), "seb-restore-"));
  image = await makeDatabase({ rows: 300, targetBytes: 300_000 });
  other = await makeDatabase({ rows: 7 });
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A fresh folder and backup name per test. */
async function fresh(): Promise<{ name: string; folder: string }> {
  const name = `r${n++}`;
  const folder = join(dir, name);
  await mkdir(folder);
  return { name, folder };
}

function restore(name: string, options: Omit<RestoreOptions, "which"> & { which?: string }, files: RestoreFiles = nodeRestoreFiles, sqliteCheckMaxBytes?: number) {
  return restoreBackup({ config: { name, maxBytes: 4_294_967_295, s3: { prefix: "backups/" } }, runtime, store, files, sqliteCheckMaxBytes }, { which: "latest", ...options });
}

/** The two ways a restore is proved: SQLite's integrity_check in memory (the default below 256 MiB), and the structural check as the pages stream (forced here with a limit of 0). */
const PATHS = [
  { label: "", limit: undefined, check: "integrity_check" },
  { label: " (over the in-memory limit: structural check)", limit: 0, check: "structure" },
] as const;

const logged = (msg: string) => logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);


const bytesOf = async (path: string) => new Uint8Array(await readFile(path));

describe("restoreBackup", () => {
  it("restores the latest backup to a new file, byte for byte, and logs each step", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image: other, time: new Date(Date.now() - 60_000) });
    const { key, file } = await putBackup(s3, { name, image });
    const target = join(folder, "app.db");
    logLines.length = 0;

    const result = await restore(name, { target });
    expect(result).toEqual({
      restored: true,
      key,
      file,
      target,
      bytes: image.length,
      sha256: sha256(image),
      pageSize: 4096,
      pageCount: image.length / 4096,
      replaced: false,
      removed: [],
      format: "sqlite",
    });
    const restored = await bytesOf(target);
    expect(sha256(restored)).toBe(sha256(image));
    expect(await integrityCheck(restored)).toBe("ok");
    expect(await readdir(folder)).toEqual(["app.db"]);
    const msgs = logLines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    // Each step once, with download progress ("restoring", throttled to one line per 2 s) in between.
    expect(msgs.filter((m) => m !== "restoring")).toEqual(["restore started", "restore downloaded", "restore verified", "restored"]);
    const progress = logged("restoring");
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(msgs.indexOf("restoring")).toBe(1);
    for (const p of progress) expect(p).toMatchObject({ totalBytes: image.length });
    expect(logged("restore verified")[0]).toMatchObject({ check: "integrity_check", integrity: "ok", pageCount: image.length / 4096 });
    expect(logLines.join("\n")).not.toContain(s3.secretAccessKey);
  });

  it("restores a named backup file, not the latest", async () => {
    const { name, folder } = await fresh();
    const older = await putBackup(s3, { name, image: other, time: new Date(Date.now() - 60_000) });
    await putBackup(s3, { name, image });
    const target = join(folder, "old.db");
    const result = await restore(name, { target, which: older.file });
    expect(result).toMatchObject({ restored: true, key: older.key });
    expect(await dumpTables(await bytesOf(target))).toEqual(await dumpTables(other));
  });

  it("refuses an existing target without --force, before asking the store anything", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    const target = join(folder, "app.db");
    await writeFile(target, other);
    // An invalid backup name would fail at resolution: the target is decided first.
    const err = await backupError(restore(name, { target, which: "not-a-backup" }));
    expect(err.code).toBe("TARGET_EXISTS");
    expect(err.status).toBe(409);
    expect(err.message).toContain(`${target} already exists (${other.length} bytes); use --force`);
    expect(sha256(await bytesOf(target))).toBe(sha256(other));
    expect(await readdir(folder)).toEqual(["app.db"]);
  });

  it("--if-missing keeps a present target (no store call) and restores an absent one", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    const present = join(folder, "present.db");
    await writeFile(present, other);
    expect(await restore(name, { target: present, ifMissing: true, which: "not-a-backup" })).toEqual({ restored: false, target: present, reason: "exists" });
    expect(sha256(await bytesOf(present))).toBe(sha256(other));

    const absent = join(folder, "absent.db");
    expect(await restore(name, { target: absent, ifMissing: true })).toMatchObject({ restored: true, replaced: false });
    expect(sha256(await bytesOf(absent))).toBe(sha256(image));
  });

  it("--force replaces the target, keeps its permissions and removes its stale -wal, -shm and -journal", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    const target = join(folder, "app.db");
    await writeFile(target, other);
    await chmod(target, 0o600);
    for (const s of ["-wal", "-shm", "-journal"]) await writeFile(`${target}${s}`, new Uint8Array(4096).fill(7));
    await writeFile(join(folder, "app.db-other"), "not a companion");

    const result = await restore(name, { target, force: true });
    expect(result).toMatchObject({ restored: true, replaced: true, removed: [`${target}-wal`, `${target}-shm`, `${target}-journal`] });
    expect(sha256(await bytesOf(target))).toBe(sha256(image));
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    expect((await readdir(folder)).sort()).toEqual(["app.db", "app.db-other"]);
  });

  it("removes a stale -wal left next to a missing database (the auto-restore case)", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    const target = join(folder, "app.db");
    await writeFile(`${target}-wal`, new Uint8Array(8192).fill(1));
    const result = await restore(name, { target, ifMissing: true });
    expect(result).toMatchObject({ restored: true, removed: [`${target}-wal`] });
    expect(await readdir(folder)).toEqual(["app.db"]);
  });

  const damaged: { label: string; damage: (s3: TestStore, key: string) => Promise<void>; code: string; message: RegExp }[] = [
    { label: "a flipped byte in the gzip body", damage: (t, key) => replaceBody(t, key, flipMiddleByte), code: "VERIFY_FAILED", message: /does not decompress|decompresses to/ },
    {
      label: "valid gzip of content other than the metadata's sha256",
      damage: (t, key) =>
        replaceBody(t, key, () => {
          const changed = image.slice();
          changed[image.length - 100] = changed[image.length - 100]! ^ 0x40;
          return gzipSync(changed);
        }),
      code: "VERIFY_FAILED",
      message: /the sha256 of its \d+ bytes is [0-9a-f]{64}, its metadata says/,
    },
    { label: "valid gzip of a shorter image", damage: (t, key) => replaceBody(t, key, () => gzipSync(image.subarray(0, 8192))), code: "VERIFY_FAILED", message: /decompresses to 8192 bytes, its metadata says/ },
  ];
  for (const d of damaged) {
    for (const proof of PATHS) {
      it(`${d.label}${proof.label}: --force does not replace the target and leaves no temp file`, async () => {
        const { name, folder } = await fresh();
        const { key } = await putBackup(s3, { name, image });
        await d.damage(s3, key);
        const target = join(folder, "app.db");
        await writeFile(target, other);
        await writeFile(`${target}-wal`, "stale wal of the current database");
        const err = await backupError(restore(name, { target, force: true }, nodeRestoreFiles, proof.limit));
        expect(err.code).toBe(d.code);
        expect(err.message).toMatch(d.message);
        expect(sha256(await bytesOf(target))).toBe(sha256(other));
        // Nothing was touched: not even the companions of the database that stays.
        expect((await readdir(folder)).sort()).toEqual(["app.db", "app.db-wal"]);
      });
    }
  }

  it("over the in-memory limit: streamed to the temp file, proved by the structural check and the sha256 read back from disk, byte for byte", async () => {
    const { name, folder } = await fresh();
    const { key } = await putBackup(s3, { name, image });
    const target = join(folder, "app.db");
    logLines.length = 0;
    const result = await restore(name, { target }, nodeRestoreFiles, image.length - 1);
    expect(result).toMatchObject({ restored: true, key, bytes: image.length, sha256: sha256(image), pageSize: 4096, pageCount: image.length / 4096 });
    expect(sha256(await bytesOf(target))).toBe(sha256(image));
    expect(await readdir(folder)).toEqual(["app.db"]);
    expect(logged("restore verified")[0]).toMatchObject({ check: "structure", integrity: "ok", pageCount: image.length / 4096 });
    expect(String(logged("restore verified")[0]!.why)).toContain(`over ${image.length - 1} bytes`);
  });

  for (const proof of PATHS) {
    it(`a database SQLite's quick_check rejects, inside a backup with its true sha256, is refused${proof.label}: no target, no temp file`, async () => {
      const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000, targetBytes: 300_000 }));
      const sqlite = await quickCheck(bad);
      expect(sqlite).not.toEqual(["ok"]);
      const { name, folder } = await fresh();
      await putBackup(s3, { name, image: bad });
      const target = join(folder, "app.db");
      const err = await backupError(restore(name, { target }, nodeRestoreFiles, proof.limit));
      expect({ code: err.code, status: err.status }).toEqual({ code: "SQLITE_CORRUPT", status: 422 });
      if (proof.check === "structure") {
        // The finding names the tree and page SQLite names.
        const where = /Tree (\d+) page (\d+)/.exec(sqlite.join("\n"));
        expect(err.message).toMatch(/failed the structural check: Tree \d+ page \d+/);
        expect(err.message).toContain(`Tree ${where![1]} page ${where![2]}`);
      } else {
        expect(err.message).toMatch(/failed PRAGMA integrity_check: /);
      }
      expect(err.message).toMatch(/use an older backup\.$/);
      expect(await readdir(folder)).toEqual([]);

      // --force over an existing database: it and its companions stay as they were.
      await writeFile(target, other);
      await writeFile(`${target}-wal`, "stale wal of the current database");
      expect((await backupError(restore(name, { target, force: true }, nodeRestoreFiles, proof.limit))).code).toBe("SQLITE_CORRUPT");
      expect(sha256(await bytesOf(target))).toBe(sha256(other));
      expect((await readdir(folder)).sort()).toEqual(["app.db", "app.db-wal"]);
    });
  }

  it("a corrupt database inside a well-formed backup is refused (integrity_check) and not written", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image: await corruptIndexPage(image) });
    const target = join(folder, "app.db");
    const err = await backupError(restore(name, { target }));
    expect(err.code).toBe("SQLITE_CORRUPT");
    expect(err.message).toMatch(/integrity_check|SQLite cannot read/);
    expect(await readdir(folder)).toEqual([]);
  });

  for (const proof of PATHS) {
    it(`what is checked is what is on disk: a write corrupted on its way is caught by the read-back${proof.label}`, async () => {
      const { name, folder } = await fresh();
      await putBackup(s3, { name, image });
      const target = join(folder, "app.db");
      await writeFile(target, other);
      let flipped = false;
      const badDisk: RestoreFiles = {
        ...nodeRestoreFiles,
        async createExclusive(path, mode) {
          const file = await nodeRestoreFiles.createExclusive(path, mode);
          return {
            ...file,
            write: (chunk) => {
              if (flipped || chunk.length < 200) return file.write(chunk);
              flipped = true;
              const copy = chunk.slice();
              copy[100] = copy[100]! ^ 0x10;
              return file.write(copy);
            },
          };
        },
      };
      const err = await backupError(restore(name, { target, force: true }, badDisk, proof.limit));
      expect(flipped).toBe(true);
      expect(err.code).toBe("VERIFY_FAILED");
      expect(err.message).toContain("the sha256 of its");
      // The bytes that streamed were the backup's: the disk is blamed, not the backup.
      expect(err.message).toContain("the temp file read back from disk is not what was written to it");
      expect(sha256(await bytesOf(target))).toBe(sha256(other));
      expect(await readdir(folder)).toEqual(["app.db"]);
    });
  }

  it("a full disk is named, and the partial temp file is removed", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    const full: RestoreFiles = {
      ...nodeRestoreFiles,
      async createExclusive(path, mode) {
        const file = await nodeRestoreFiles.createExclusive(path, mode);
        let writes = 0;
        return {
          ...file,
          write: async (chunk) => {
            if (writes++ === 1) throw fsError(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }), `writing ${path}`);
            return file.write(chunk);
          },
        };
      },
    };
    const err = await backupError(restore(name, { target: join(folder, "app.db") }, full));
    expect(err.code).toBe("TARGET_UNWRITABLE");
    expect(err.message).toMatch(/^writing .*\.app\.db\.restore-[0-9a-f]{12}\.tmp failed: disk full \(no space left on device\) \(ENOSPC\)\.$/);
    expect(await readdir(folder)).toEqual([]);
  });

  it("a failing rename leaves the target and removes the temp file", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    const target = join(folder, "app.db");
    await writeFile(target, other);
    const files: RestoreFiles = {
      ...nodeRestoreFiles,
      rename: (from) => Promise.reject(fsError(Object.assign(new Error("EIO"), { code: "EIO" }), `renaming ${from}`)),
    };
    const err = await backupError(restore(name, { target, force: true }, files));
    expect(err.code).toBe("TARGET_UNWRITABLE");
    expect(err.message).toContain("input/output error (EIO)");
    expect(sha256(await bytesOf(target))).toBe(sha256(other));
    expect(await readdir(folder)).toEqual(["app.db"]);
  });

  it("a missing directory, a directory or a symbolic link as target are refused with a clear error", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });

    await writeFile(join(folder, "afile"), "x");
    const notDir = await backupError(restore(name, { target: join(folder, "afile", "app.db") }));
    expect(notDir.code).toBe("TARGET_UNWRITABLE");
    expect(notDir.message).toBe(`cannot restore to ${join(folder, "afile", "app.db")}: ${join(folder, "afile")} is not a directory.`);

    const missing = await backupError(restore(name, { target: join(folder, "no", "such", "app.db") }));
    expect(missing.code).toBe("TARGET_UNWRITABLE");
    expect(missing.message).toBe(`cannot restore to ${join(folder, "no", "such", "app.db")}: directory ${join(folder, "no", "such")} does not exist (create it first).`);

    await mkdir(join(folder, "adir"));
    const isDir = await backupError(restore(name, { target: join(folder, "adir"), force: true }));
    expect(isDir.code).toBe("TARGET_UNWRITABLE");
    expect(isDir.message).toContain("it is a directory");

    await writeFile(join(folder, "real.db"), other);
    await symlink(join(folder, "real.db"), join(folder, "link.db"));
    const isLink = await backupError(restore(name, { target: join(folder, "link.db"), force: true }));
    expect(isLink.code).toBe("TARGET_UNWRITABLE");
    expect(isLink.message).toContain("it is a symbolic link");
    expect((await lstat(join(folder, "link.db"))).isSymbolicLink()).toBe(true);
    expect(sha256(await bytesOf(join(folder, "real.db")))).toBe(sha256(other));
    expect((await readdir(folder)).sort()).toEqual(["adir", "afile", "link.db", "real.db"]);
  });

  it("restores into a directory reached through a symbolic link", async () => {
    const { name, folder } = await fresh();
    await putBackup(s3, { name, image });
    await mkdir(join(folder, "data"));
    await symlink(join(folder, "data"), join(folder, "current"));
    const result = await restore(name, { target: join(folder, "current", "app.db") });
    expect(result).toMatchObject({ restored: true });
    expect(sha256(await bytesOf(join(folder, "data", "app.db")))).toBe(sha256(image));
    expect(await readdir(join(folder, "data"))).toEqual(["app.db"]);
  });

  it("an invalid file name, an unknown file and no backups at all are named", async () => {
    const { name, folder } = await fresh();
    const target = join(folder, "app.db");
    expect((await backupError(restore(name, { target }))).code).toBe("BACKUP_NOT_FOUND");
    expect((await backupError(restore(name, { target, which: "../../etc/passwd" }))).code).toBe("INVALID_BACKUP_FILE");
    expect((await backupError(restore(name, { target, which: `${name}-2020-01-01T00-00-00-000Z-000000.sqlite.gz` }))).code).toBe("BACKUP_NOT_FOUND");
    expect(await readdir(folder)).toEqual([]);
  });

  it("--force and --if-missing together are refused", async () => {
    const err = await backupError(restore("x", { target: join(dir, "x.db"), force: true, ifMissing: true }));
    expect(err.code).toBe("BAD_REQUEST");
  });

  it("splitPath", () => {
    expect(splitPath("/a/b/c.db")).toEqual({ dir: "/a/b", base: "c.db" });
    expect(splitPath("/c.db")).toEqual({ dir: "/", base: "c.db" });
    expect(splitPath("c.db")).toEqual({ dir: ".", base: "c.db" });
    expect(splitPath("C:\\data\\c.db")).toEqual({ dir: "C:\\data", base: "c.db" });
  });
});
