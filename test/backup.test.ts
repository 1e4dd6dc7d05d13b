/**
 * The whole pipeline against a real S3 server: back up real SQLite files, download through
 * the signed link with plain HTTP, gunzip, open with SQLite and compare with the source.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner, type Manifest } from "../src/backup.js";
import { createLink, listBackups } from "../src/catalog.js";
import { parseConfig } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store, MIN_PART_SIZE } from "../src/store/s3.js";
import { corruptIndexPage, corruptTableLeaf, dumpTables, integrityCheck, makeDatabase, quickCheck, sha256, sqliteCli, writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";

let s3: TestStore;
let dir: string;
let runtime: Runtime;
const logLines = capturedLines("backup log");

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-backup-"));
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

function setup(env: Record<string, string>, rt: Runtime = runtime) {
  const config = parseConfig(s3.env(env), { maxBytes: NODE_MAX_BYTES });
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles }, { readAttempts: config.readAttempts });
  return { config, store, runner: createBackupRunner({ config, runtime: rt, store, source }) };
}

async function downloadViaLink(env: Record<string, string>, which = "latest"): Promise<{ bytes: Uint8Array; response: Response }> {
  const { config, store } = setup(env);
  const link = await createLink(store, config, which, new Date());
  expect(link.url).toMatch(/X-Amz-Signature=/);
  expect(link.url).not.toContain(s3.secretAccessKey === s3.accessKeyId ? "\u0000" : s3.secretAccessKey);
  const response = await fetch(link.url);
  expect(response.status).toBe(200);
  const gz = new Uint8Array(await response.arrayBuffer());
  expect(gz.length).toBe(link.size);
  return { bytes: new Uint8Array(gunzipSync(gz)), response };
}

describe("round trip", () => {
  const sizes = [
    { label: "tiny", options: { rows: 3 } },
    { label: "~1 MiB", options: { rows: 500, targetBytes: 1024 * 1024 } },
    { label: "≥ 25 MiB (multipart)", options: { rows: 2000, targetBytes: 26 * 1024 * 1024 } },
  ];

  for (const { label, options } of sizes) {
    it(`backs up a ${label} database and the signed link downloads exactly it`, async () => {
      const name = `rt-${label.replace(/[^a-z0-9]+/gi, "").toLowerCase() || "x"}`;
      const path = join(dir, `${name}.db`);
      const source = await writeDatabase(path, options);
      const env = { BACKUP_SOURCE: path, BACKUP_NAME: name, CHECK: "full", VERIFY: "full" };

      const manifest = await setup(env).runner.run();
      expect(manifest.key).toMatch(new RegExp(`^backups/${name}/${name}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z-[0-9a-f]{6}\\.sqlite\\.gz$`));
      expect(manifest.bytes).toBe(source.length);
      expect(manifest.sha256).toBe(sha256(source));
      if (options.targetBytes && options.targetBytes > 20 * 1024 * 1024) expect(manifest.gzipBytes).toBeGreaterThan(MIN_PART_SIZE);

      const { bytes, response } = await downloadViaLink(env);
      expect(response.headers.get("content-disposition") ?? "").toContain(manifest.file);
      expect(sha256(bytes)).toBe(sha256(source));
      expect(await integrityCheck(bytes)).toBe("ok");
      expect(await dumpTables(bytes)).toEqual(await dumpTables(source));

      const head = await setup(env).store.head(manifest.key);
      expect(head?.metadata).toEqual({
        sha256: manifest.sha256,
        bytes: String(source.length),
        "page-size": "4096",
        "page-count": String(source.length / 4096),
        "sqlite-version": manifest.sqliteVersion,
        format: "sqlite3+gzip",
      });
      expect(head?.contentType).toBe("application/gzip");
      expect(head?.size).toBe(manifest.gzipBytes);

      const cli = sqliteCli();
      if (cli) {
        const restored = join(dir, `${name}.restored.db`);
        await writeFile(restored, bytes);
        expect(cli(restored, "PRAGMA integrity_check")).toBe("ok");
        expect(cli(restored, ".dump")).toBe(cli(path, ".dump"));
      }
    });
  }

  it("backs up a checkpointed WAL-mode database as a rollback-journal image with the same rows", async () => {
    const path = join(dir, "walhdr.db");
    const source = await writeDatabase(path, { rows: 50, walHeader: true });
    const env = { BACKUP_SOURCE: path };
    const manifest = await setup(env).runner.run();
    expect(manifest.name).toBe("walhdr");
    const { bytes } = await downloadViaLink(env);
    expect([bytes[18], bytes[19]]).toEqual([1, 1]);
    expect(sha256(bytes)).toBe(manifest.sha256);
    expect(bytes.subarray(20)).toEqual(source.subarray(20));
    expect(await integrityCheck(bytes)).toBe("ok");
  });
});

describe("CHECK=structure", () => {
  const logsOf = (name: string) => logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.name === name);

  it("backs up a sound database, streamed and checked on its way to the bucket, with the metadata SQLite gives", async () => {
    const path = join(dir, "struct-good.db");
    // A file source is read into shared memory: the check could go to a thread, and must not.
    const source = await writeDatabase(path, { rows: 2000, targetBytes: 3 * MIN_PART_SIZE });
    const env = { BACKUP_SOURCE: path, BACKUP_NAME: "struct-good", CHECK: "structure", VERIFY: "full" };
    const manifest = await setup(env).runner.run();
    const quick = await setup({ ...env, CHECK: "quick", BACKUP_NAME: "struct-good-q" }).runner.run();
    expect({ pageSize: manifest.pageSize, pageCount: manifest.pageCount, sqliteVersion: manifest.sqliteVersion }).toEqual({
      pageSize: quick.pageSize,
      pageCount: quick.pageCount,
      sqliteVersion: quick.sqliteVersion,
    });
    expect(manifest.pageCount).toBe(source.length / 4096);
    expect(manifest.sha256).toBe(sha256(source));
    const { bytes } = await downloadViaLink(env);
    expect(sha256(bytes)).toBe(sha256(source));
    expect(await integrityCheck(bytes)).toBe("ok");

    const lines = logsOf("struct-good");
    const msgs = lines.map((l) => l.msg);
    expect(msgs).not.toContain("image read; checking it beside the upload");
    expect(msgs.indexOf("streaming the image")).toBeGreaterThanOrEqual(0);
    expect(msgs.indexOf("image checked")).toBeGreaterThan(msgs.indexOf("streaming the image"));
    // The verdict comes before the backup gets its key (the copy from <key>.partial).
    expect(msgs.indexOf("image checked")).toBeLessThan(msgs.indexOf("uploaded"));
    expect(await s3.keys("backups/struct-good/")).toEqual([manifest.key]);
    expect(lines.find((l) => l.msg === "image checked")).toMatchObject({ check: "structure", tables: 3, pageCount: source.length / 4096 });
  });

  it("refuses a database with a damaged table b-tree (SQLite's quick_check agrees): SQLITE_CORRUPT 422, nothing kept", async () => {
    const path = join(dir, "struct-bad.db");
    await writeDatabase(path, { rows: 20 });
    const env = { BACKUP_SOURCE: path, BACKUP_NAME: "struct-bad", CHECK: "structure" };
    const good = await setup(env).runner.run();
    const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000, targetBytes: 2 * MIN_PART_SIZE }));
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    await writeFile(path, bad);

    const logged = logsOf("struct-bad").length;
    const err = await backupError(setup(env).runner.run());
    expect({ code: err.code, status: err.status }).toEqual({ code: "SQLITE_CORRUPT", status: 422 });
    expect(err.message.startsWith(`file ${path} failed the structural check (CHECK=structure): `), err.message).toBe(true);
    expect(err.message).toMatch(/\bpage \d+/i);
    expect(await s3.keys("backups/struct-bad/")).toEqual([good.key]);
    expect(await s3.uploads()).toEqual([]);
    expect(logsOf("struct-bad").slice(logged).map((l) => l.msg)).not.toContain("uploaded");
  });
});

describe("retention", () => {
  it("keeps the newest MAX_COUNT and never touches objects it did not write", async () => {
    const path = join(dir, "ret.db");
    await writeDatabase(path, { rows: 10 });
    const foreign = [
      "backups/ret/notes.txt",
      "backups/ret/ret-garbage.sqlite.gz",
      "backups/ret/ret-2020-01-01T00-00-00-000Z-abcdef.sqlite.gz.bak",
      "backups/ret/nested/ret-2020-01-01T00-00-00-000Z-abcdef.sqlite.gz",
      "backups/ret-2020-01-01T00-00-00-000Z-abcdef.sqlite.gz",
    ];
    for (const Key of foreign) await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: "not ours" }));
    const other = setup({ BACKUP_SOURCE: path, BACKUP_NAME: "ret2", MAX_COUNT: "3" });
    const otherKeys = [(await other.runner.run()).key, (await other.runner.run()).key];

    const { runner, config, store } = setup({ BACKUP_SOURCE: path, BACKUP_NAME: "ret", MAX_COUNT: "3" });
    const manifests: Manifest[] = [];
    for (let i = 0; i < 5; i++) manifests.push(await runner.run());

    const ours = manifests.map((m) => m.key);
    expect(manifests.map((m) => m.pruned)).toEqual([[], [], [], [ours[0]], [ours[1]]]);
    const listed = await listBackups(store, config);
    expect(listed.map((b) => b.key)).toEqual([ours[4], ours[3], ours[2]]);
    expect(await s3.keys("backups/ret")).toEqual([...foreign, ...otherKeys, ours[2], ours[3], ours[4]].sort());
  });
});

describe("failures leave earlier backups and nothing half-written", () => {
  let good: Manifest;
  let goodPath: string;

  beforeAll(async () => {
    goodPath = join(dir, "fail.db");
    await writeDatabase(goodPath, { rows: 20 });
    good = await setup({ BACKUP_SOURCE: goodPath, BACKUP_NAME: "fail" }).runner.run();
  });

  async function expectCleanFailure(run: () => Promise<unknown>, code: string, message: RegExp): Promise<BackupError> {
    const be = await backupError(run());
    expect(be.code).toBe(code);
    expect(be.message).toMatch(message);
    expect(be.message).not.toContain(s3.secretAccessKey === "S3RVER" ? "\u0000" : s3.secretAccessKey);
    expect(await s3.keys("backups/fail/")).toEqual([good.key]);
    expect(await s3.uploads()).toEqual([]);
    return be;
  }

  const cases: { label: string; code: string; message: RegExp; make: (path: string) => Promise<Record<string, string>> }[] = [
    { label: "an empty file", code: "SOURCE_EMPTY", message: /empty/, make: async (p) => (await writeFile(p, ""), {}) },
    { label: "a text file", code: "NOT_SQLITE", message: /not a SQLite database/, make: async (p) => (await writeFile(p, "<html>hello</html>\n".repeat(100)), {}) },
    {
      label: "a truncated database",
      code: "SQLITE_TRUNCATED",
      message: /truncated/,
      make: async (p) => {
        const db = await makeDatabase({ rows: 300, targetBytes: 200_000 });
        await writeFile(p, db.subarray(0, db.length - 4096));
        return {};
      },
    },
    {
      label: "a database with a corrupt b-tree",
      code: "SQLITE_CORRUPT",
      message: /quick_check|malformed|corrupt/i,
      make: async (p) => (await writeFile(p, await corruptIndexPage(await makeDatabase({ rows: 3000 }))), {}),
    },
    {
      label: "a database whose rollback journal stays hot (a crashed writer)",
      code: "HOT_JOURNAL",
      message: /live rollback journal.*on each of 2 attempts/,
      make: async (p) => {
        await writeDatabase(p, { rows: 5 });
        const journal = new Uint8Array(512);
        journal.set([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]);
        await writeFile(`${p}-journal`, journal);
        return { READ_ATTEMPTS: "2" };
      },
    },
    { label: "a missing file", code: "SOURCE_NOT_FOUND", message: /does not exist/, make: async () => ({}) },
    {
      label: "a file over MAX_BYTES",
      code: "SOURCE_TOO_LARGE",
      message: /MAX_BYTES/,
      make: async (p) => (await writeDatabase(p, { rows: 100 }), { MAX_BYTES: "8192" }),
    },
    {
      label: "a missing bucket",
      code: "STORE_BUCKET_MISSING",
      message: /bucket "no-such-bucket-\w+" does not exist/,
      make: async (p) => (await writeDatabase(p, { rows: 5 }), { S3_BUCKET: `no-such-bucket-${Date.now()}` }),
    },
    {
      label: "wrong credentials",
      code: "STORE_AUTH",
      message: /S3_SECRET_ACCESS_KEY/,
      make: async (p) => (await writeDatabase(p, { rows: 5 }), { S3_SECRET_ACCESS_KEY: "definitely-wrong-secret" }),
    },
  ];

  for (const c of cases) {
    it(`fails cleanly on ${c.label}`, async () => {
      const path = join(dir, `case-${c.code}.db`);
      const extra = await c.make(path);
      const err = await expectCleanFailure(() => setup({ BACKUP_SOURCE: path, BACKUP_NAME: "fail", ...extra }).runner.run(), c.code, c.message);
      expect(err.status).toBeGreaterThanOrEqual(400);
      expect(err.message).not.toContain("definitely-wrong-secret");
    });
  }

  // A store that damages what it stores (as a faulty disk or proxy would), while answering
  // success: only verification can notice, and then the run must fail before prune.
  const flipByteAt = (offset: number) => {
    let seen = 0;
    return new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        const copy = chunk.slice();
        if (offset >= seen && offset < seen + copy.length) copy[offset - seen]! ^= 0xff;
        seen += copy.length;
        ctl.enqueue(copy);
      },
    });
  };
  const dropLastBytes = (n: number) => {
    let held: Uint8Array | undefined;
    return new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        if (held) ctl.enqueue(held);
        held = chunk;
      },
      flush(ctl) {
        if (held) ctl.enqueue(held.subarray(0, Math.max(0, held.length - n)));
      },
    });
  };
  for (const c of [
    // Offset 100: past the 10-byte gzip header, inside the compressed data.
    { label: "one byte of the stored body flipped (VERIFY=full reads it back)", verify: "full", message: /does not decompress|read back \d+ bytes with sha256/, damage: () => flipByteAt(100) },
    { label: "the stored body cut short (VERIFY=head sees the size)", verify: "head", message: /size is \d+ bytes, \d+ were sent/, damage: () => dropLastBytes(10) },
  ]) {
    it(`fails the run, deletes the object and does not prune when verification fails: ${c.label}`, async () => {
      const { config, store } = setup({ BACKUP_SOURCE: goodPath, BACKUP_NAME: "fail", MAX_COUNT: "1", VERIFY: c.verify });
      const damaging = {
        ...store,
        upload: (key: string, body: ReadableStream<Uint8Array>, opts: Parameters<typeof store.upload>[2]) => store.upload(key, body.pipeThrough(c.damage()), opts),
      };
      const source = createSource(config.source, { files: nodeFiles });
      const runner = createBackupRunner({ config, runtime, store: damaging, source });
      // MAX_COUNT 1: had prune run, the earlier backup would be gone (expectCleanFailure checks it is not).
      await expectCleanFailure(() => runner.run(), "VERIFY_FAILED", c.message);
    });
  }

  it("aborts the multipart upload when compression fails after parts were uploaded", async () => {
    const path = join(dir, "midway.db");
    // Big enough that several gzip blocks (8 MiB each, compressed on worker threads) and
    // several 5 MiB parts are out before the failure.
    await writeDatabase(path, { rows: 100, targetBytes: 40 * 1024 * 1024 });
    let fedBytes = 0;
    const failing: Runtime = {
      ...runtime,
      gzip(level) {
        const inner = runtime.gzip(level);
        const gate = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            fedBytes += chunk.byteLength;
            if (fedBytes > 34 * 1024 * 1024) throw new Error("injected compression failure");
            controller.enqueue(chunk);
          },
        });
        return { writable: gate.writable, readable: gate.readable.pipeThrough(inner) };
      },
    };
    let partsSent = 0;
    const { config, store } = setup({ BACKUP_SOURCE: path, BACKUP_NAME: "fail" });
    const source = createSource(config.source, { files: nodeFiles });
    const countingStore = {
      ...store,
      upload: (key: string, body: ReadableStream<Uint8Array>, opts: Parameters<typeof store.upload>[2]) =>
        store.upload(key, body, { ...opts, onProgress: (n) => ((partsSent = n), opts.onProgress?.(n)) }),
    };
    const runner = createBackupRunner({ config, runtime: failing, store: countingStore, source });
    await expectCleanFailure(() => runner.run(), "UPLOAD_FAILED", /injected compression failure/);
    expect(partsSent).toBeGreaterThan(MIN_PART_SIZE);
  });
});

describe("logs", () => {
  it("report progress and never contain the secret key", () => {
    const messages = logLines.map((l) => JSON.parse(l) as { msg: string });
    expect(messages.some((m) => m.msg === "backup finished")).toBe(true);
    expect(messages.some((m) => m.msg === "uploading")).toBe(true);
    if (s3.secretAccessKey !== s3.accessKeyId) expect(logLines.join("\n")).not.toContain(s3.secretAccessKey);
  });
});
