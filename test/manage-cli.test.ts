/**
 * `info` and `delete` as users run them (a separate CLI process, the in-process S3 server or
 * S3_TEST_*, a real SQLite file made by the sqlite3 CLI), and the library's `info` and
 * `deleteBackup`. Every delete case compares the bucket's full key list before and after.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteBackup, info, type BackupInfo, type BackupSettings, type DeletedBackup } from "../functions/lib/node.js";
import { putBackup } from "./helpers/backups.js";
import { cli, lastLine } from "./helpers/cli.js";
import { sha256 } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
let dbPath: string;
let env: Record<string, string>;
/** The backup the tool made of dbPath (its manifest). */
let made: { key: string; file: string; sha256: string; gzipBytes: number };

const sqlite = (sql: string) => execFileSync("sqlite3", [dbPath, sql], { encoding: "utf8" }).trim();

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-manage-"));
  dbPath = join(dir, "app.db");
  // A page size that is not the default, so that a value read from anywhere else would show.
  sqlite(
    "PRAGMA page_size=8192; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); " +
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<3000) INSERT INTO t(v) SELECT printf('row %d %s', i, hex(randomblob(40))) FROM n;",
  );
  env = s3.env({ BACKUP_SOURCE: dbPath, LOCK: "off", MAX_COUNT: "100" });
  const run = await cli(["backup"], env);
  expect(run.code, run.stderr).toBe(0);
  made = JSON.parse(run.stdout);
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

const objectBytes = async (key: string) => (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToByteArray();
const settings = (): BackupSettings => ({ ...env }) as BackupSettings;

describe("info", () => {
  it("--json: the key, times, sizes and the image's facts, checked against sqlite3 and the object's own bytes", async () => {
    const run = await cli(["info", made.file, "--json"], env);
    expect(run.code, run.stderr).toBe(0);
    const i = JSON.parse(run.stdout) as BackupInfo;
    const body = await objectBytes(made.key);
    const image = new Uint8Array(gunzipSync(body));
    expect(i.key).toBe(made.key);
    expect(i.file).toBe(made.file);
    expect(i.name).toBe("app");
    expect(i.storedBytes).toBe(body.length);
    expect(i.bytes).toBe(image.length);
    expect(i.sha256).toBe(sha256(image));
    expect(i.sha256).toBe(sha256(readFileSync(dbPath)));
    expect(i.pageSize).toBe(Number(sqlite("PRAGMA page_size")));
    expect(i.pageSize).toBe(8192);
    expect(i.pageCount).toBe(Number(sqlite("PRAGMA page_count")));
    expect(i.sqliteVersion).toMatch(/^3\.\d+\.\d+$/);
    expect(i.format).toBe("sqlite3+gzip");
    expect(i.encrypted).toBe(false);
    expect(i.contentType).toBe("application/gzip");
    expect(i.newest).toBe(true);
    expect(i.verified).toBe("at-backup");
    // The time in the key is when the run started; the store's time is when it finished receiving it.
    expect(made.file).toContain(i.createdAt.replace(/:/g, "-").replace(/\.(\d{3})Z$/, "-$1Z"));
    expect(Date.parse(i.lastModified)).toBeGreaterThanOrEqual(Date.parse(i.createdAt) - 1000);

    const latest = await cli(["info", "--json"], env);
    expect(JSON.parse(latest.stdout)).toEqual(i);
  });

  it("--verify downloads and proves it now; the plain output is one fact per line", async () => {
    const run = await cli(["info", "latest", "--verify", "--json"], env);
    expect(run.code, run.stderr).toBe(0);
    const i = JSON.parse(run.stdout) as BackupInfo;
    expect(i.verified).toBe("now");
    expect(i.verification).toMatchObject({ key: made.key, sha256: made.sha256, check: "structure", integrity: "ok" });
    const plain = await cli(["info"], env);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain(`key      ${made.key}\n`);
    expect(plain.stdout).toContain(`sha256   ${made.sha256}\n`);
    expect(plain.stdout).toContain(`pages    ${sqlite("PRAGMA page_count")} of 8192 bytes\n`);
    expect(plain.stdout).toMatch(/^verified when it was made/m);
  });

  it("an object under a backup key whose metadata is not this tool's: verified no, with the reason", async () => {
    const image = readFileSync(dbPath);
    const odd = await putBackup(s3, { name: "app", image, time: new Date("2020-01-01T00:00:00.000Z"), metadata: { sha256: undefined, format: "something-else" } });
    try {
      const i = await info(settings(), odd.file, { logger: false });
      expect(i.verified).toBe("no");
      expect(i.newest).toBe(false);
      expect(i.sha256).toBeNull();
      expect(i.format).toBe("something-else");
      expect(i.problems?.[0]).toMatch(/sha256 is null/);
    } finally {
      await deleteBackup(settings(), odd.file, { logger: false });
    }
  });

  it("hostile names and absent files are refused with their codes", async () => {
    await expect(info(settings(), "../../etc/passwd", { logger: false })).rejects.toMatchObject({ code: "INVALID_BACKUP_FILE", status: 400 });
    await expect(info(settings(), "app-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz", { logger: false })).rejects.toMatchObject({ code: "BACKUP_NOT_FOUND", status: 404 });
    const run = await cli(["info", "other-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz"], env);
    expect(run.code).toBe(1);
    expect(lastLine(run)).toMatch(/^error \[INVALID_BACKUP_FILE\]: /);
  });
});

describe("usage", () => {
  it("wrong arguments exit 2 before anything is touched; --help names the commands", async () => {
    const before = await s3.keys();
    const runs = await Promise.all([
      cli(["delete"], env),
      cli(["delete", "a", "b", "--yes"], env),
      cli(["info", "a", "b"], env),
      cli(["list", "--yes"], env),
      cli(["verify", "--verify"], env),
      cli(["link", "--force"], env),
      cli(["delete", made.file, "--to", "x", "--yes"], env),
    ]);
    const lines = runs.map((r) => [r.code, lastLine(r)]);
    expect(lines).toEqual([
      [2, expect.stringMatching(/^error: delete takes exactly one backup file name .*got 0/)],
      [2, expect.stringMatching(/^error: delete takes exactly one backup file name .*got 2/)],
      [2, expect.stringMatching(/^error: info takes one backup/)],
      [2, expect.stringMatching(/^error: --yes belongs to delete, not list/)],
      [2, expect.stringMatching(/^error: --verify belongs to info, not verify/)],
      [2, expect.stringMatching(/^error: --to, --force and --if-missing belong to restore \(--force also to delete\), not link/)],
      [2, expect.stringMatching(/^error: --to, --force and --if-missing belong to restore/)],
    ]);
    expect(await s3.keys()).toEqual(before);
    const help = await cli(["--help"], {});
    expect(help.stdout).toMatch(/^  info \[file\|latest\] \[--json\] \[--verify\]$/m);
    expect(help.stdout).toMatch(/^  delete <file> \[--yes\] \[--force\]$/m);
    const deleteHelp = await cli(["delete", "--help"], {});
    expect(deleteHelp.stdout).toMatch(/^usage: sqlite-edge-backup delete <file> \[--yes\] \[--force\]/);
  });
});

describe("delete", () => {
  /** Backups of app (older than the real one), a neighbour name that starts like it, and objects that are not backups. */
  let older: { key: string; file: string }[];
  let neighbour: { key: string; file: string };
  const image = () => new Uint8Array(readFileSync(dbPath));

  beforeAll(async () => {
    older = [];
    for (const day of [1, 2, 3]) older.push(await putBackup(s3, { name: "app", image: image(), time: new Date(`2021-01-0${day}T00:00:00.000Z`) }));
    neighbour = await putBackup(s3, { name: "appx", image: image(), time: new Date("2021-01-01T00:00:00.000Z") });
    for (const key of ["backups/app/.lock", "backups/app/notes.txt", `${older[0]!.key}.partial`, `backups/app/${older[0]!.file.replace("app-", "app/")}`, "elsewhere/app.db"]) {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: "not a backup" }));
    }
  });

  async function expectUnchanged(args: string[], code: number, line: RegExp): Promise<void> {
    const before = await s3.keys();
    const run = await cli(["delete", ...args], env);
    expect(run.code, run.stderr).toBe(code);
    expect(lastLine(run)).toMatch(line);
    expect(await s3.keys()).toEqual(before);
  }

  it("refuses hostile names, and nothing in the bucket changes", async () => {
    await expectUnchanged(["../../etc/passwd", "--yes"], 1, /^error \[INVALID_BACKUP_FILE\]: "\.\.\/\.\.\/etc\/passwd" is not a backup file name of "app"/);
    await expectUnchanged([neighbour.file, "--yes", "--force"], 1, /^error \[INVALID_BACKUP_FILE\]/);
    await expectUnchanged(["latest", "--yes", "--force"], 1, /^error \[INVALID_BACKUP_FILE\]: delete takes a backup's file name, not "latest"/);
    // Through the library (no process each): prefix tricks, other segments, the lease, a .partial.
    for (const file of [".lock", "notes.txt", `${older[0]!.file}.partial`, `app/${older[0]!.file}`, `x/../${older[0]!.file}`, older[0]!.file.toUpperCase(), `${older[0]!.file}\u0000`, "", "a".repeat(300), older[0]!.key]) {
      const before = await s3.keys();
      await expect(deleteBackup(settings(), file, { logger: false, force: true }), JSON.stringify(file)).rejects.toMatchObject({ code: "INVALID_BACKUP_FILE", status: 400 });
      expect(await s3.keys()).toEqual(before);
    }
  });

  it("an absent file is 404 BACKUP_NOT_FOUND; without --yes and no terminal it refuses (exit 2); the newest needs --force", async () => {
    await expectUnchanged(["app-2021-06-01T00-00-00-000Z-abcdef.sqlite.gz", "--yes"], 1, /^error \[BACKUP_NOT_FOUND\]: backup app-2021-06-01T00-00-00-000Z-abcdef\.sqlite\.gz does not exist/);
    await expectUnchanged([older[0]!.file], 2, /^error: delete asks for confirmation, and stdin is not a terminal: pass --yes/);
    await expectUnchanged([made.file, "--yes"], 1, /^error \[NEWEST_BACKUP\]: .* is the newest backup of "app"; deleting it needs --force/);
  });

  it("removes exactly the named object; then the newest with --force", async () => {
    const before = await s3.keys();
    const run = await cli(["delete", older[1]!.file, "--yes", "--json"], env);
    expect(run.code, run.stderr).toBe(0);
    const d = JSON.parse(run.stdout) as DeletedBackup;
    expect(d).toMatchObject({ key: older[1]!.key, file: older[1]!.file, name: "app", wasNewest: false, remaining: 3 });
    expect(await s3.keys()).toEqual(before.filter((k) => k !== older[1]!.key));
    expect(run.stderr).toContain('"msg":"backup deleted"');

    // Deleted already: a clean 404 the second time.
    await expectUnchanged([older[1]!.file, "--yes"], 1, /^error \[BACKUP_NOT_FOUND\]/);

    const beforeNewest = await s3.keys();
    const forced = await cli(["delete", made.file, "--yes", "--force"], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toBe(`deleted ${made.key} (2 backups of "app" left)\n`);
    expect(await s3.keys()).toEqual(beforeNewest.filter((k) => k !== made.key));
    // The neighbour name's backup and every object that is not a backup are still there.
    expect(await s3.keys()).toEqual(expect.arrayContaining([neighbour.key, "backups/app/.lock", "backups/app/notes.txt", `${older[0]!.key}.partial`, "elsewhere/app.db"]));
  });

  it("at a terminal it asks: anything but y keeps the backup, y deletes it", async () => {
    const target = older[0]!; // not the newest (that is older[2] now)
    const atTerminal = (answer: string) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const command = `${JSON.stringify(process.execPath)} --import tsx functions/cli.ts delete ${target.file}`;
        const child = execFile("script", ["-qfec", command, "/dev/null"], { env: { PATH: process.env.PATH ?? "", TERM: "dumb", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env } }, (err, stdout) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout }),
        );
        child.stdin!.end(answer);
      });
    const before = await s3.keys();
    const no = await atTerminal("n\n");
    expect(no.out).toContain(`delete ${target.key} (`);
    expect(no.out).toContain("[y/N]");
    expect(no.out).toContain("not confirmed; nothing deleted");
    expect(no.code).toBe(1);
    expect(await s3.keys()).toEqual(before);
    const yes = await atTerminal("y\n");
    expect(yes.code, yes.out).toBe(0);
    expect(yes.out).toContain(`deleted ${target.key}`);
    expect(await s3.keys()).toEqual(before.filter((k) => k !== target.key));
  });
});
