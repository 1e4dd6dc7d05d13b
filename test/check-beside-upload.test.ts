/**
 * Node checks the image on a worker thread while it is compressed and uploaded: the upload's
 * end waits for the verdict, and a failed check aborts it. Real S3 server, real SQLite files,
 * real worker thread.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkOnWorkerThread } from "../functions/check-worker.js";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { checkImage } from "../src/sqlite/check.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store, MIN_PART_SIZE } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { corruptIndexPage, makeDatabase, sha256, sqlJs, writeDatabase } from "./helpers/db.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
let runtime: Runtime;
const logLines = capturedLines("check-beside-upload log");

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-check-bg-"));
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

function setup(env: Record<string, string>, rt: Runtime, wrapStore: (s: BackupStore) => BackupStore = (s) => s) {
  const config = parseConfig(s3.env(env), { maxBytes: NODE_MAX_BYTES });
  const store = wrapStore(createS3Store(config.s3));
  const source = createSource(config.source, { files: nodeFiles }, { readAttempts: config.readAttempts });
  return { config, store, runner: createBackupRunner({ config, runtime: rt, store, source }) };
}

const messages = (name: string) => logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.name === name).map((l) => l.msg);

describe("the check on a worker thread", () => {
  it("reads file images from shared memory and gives the inline check's verdict", async () => {
    const path = join(dir, "shared.db");
    const bytes = await writeDatabase(path, { rows: 500 });
    const image = await createSource({ kind: "file", path }, { files: nodeFiles }).read({ maxBytes: NODE_MAX_BYTES });
    expect(image.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(sha256(image.bytes)).toBe(sha256(bytes));
    for (const mode of ["none", "quick", "full"] as const) {
      expect(await checkOnWorkerThread(image.bytes, mode, "shared db")).toEqual(checkImage(await sqlJs(), bytes, mode, "shared db"));
    }
    // Not shared: the caller checks inline.
    expect(checkOnWorkerThread(bytes, "quick", "plain db")).toBeUndefined();
  });

  it("rejects a corrupt image and an unreadable one with SQLITE_CORRUPT", async () => {
    const share = (b: Uint8Array) => {
      const s = new Uint8Array(new SharedArrayBuffer(b.length));
      s.set(b);
      return s;
    };
    const bad = share(await corruptIndexPage(await makeDatabase({ rows: 3000 })));
    const corrupt = await backupError(checkOnWorkerThread(bad, "quick", "bad db")!);
    expect(corrupt.code).toBe("SQLITE_CORRUPT");
    expect(corrupt.message).toMatch(/^bad db failed PRAGMA quick_check: /);
    const garbage = share(new Uint8Array(8192).fill(7));
    const unreadable = await backupError(checkOnWorkerThread(garbage, "quick", "garbage")!);
    expect(unreadable.code).toBe("SQLITE_CORRUPT");
    expect(unreadable.message).toMatch(/^SQLite cannot read garbage: /);
  });

  it("backs up while checking: the object gunzips to the image", async () => {
    const path = join(dir, "good.db");
    const bytes = await writeDatabase(path, { rows: 2000, targetBytes: 3 * MIN_PART_SIZE });
    const { runner, store } = setup({ BACKUP_SOURCE: path, BACKUP_NAME: "bg-good" }, runtime);
    const manifest = await runner.run();
    expect(manifest.sha256).toBe(sha256(bytes));
    expect(manifest.pageCount).toBe(bytes.length / 4096);
    const gz = new Uint8Array(await new Response(await store.get(manifest.key)).arrayBuffer());
    expect(sha256(gunzipSync(gz))).toBe(sha256(bytes));
    const msgs = messages("bg-good");
    expect(msgs).toContain("image read; checking it beside the upload");
    expect(msgs.indexOf("image checked")).toBeLessThan(msgs.indexOf("uploaded"));
  });

  it("a database corrupt deep inside, found only after parts were uploaded, leaves no object and no multipart upload", async () => {
    const path = join(dir, "deep.db");
    await writeDatabase(join(dir, "deep-good.db"), { rows: 20 });
    const good = await setup({ BACKUP_SOURCE: join(dir, "deep-good.db"), BACKUP_NAME: "bg-deep" }, runtime).runner.run();
    // Several parts' worth of random blobs, with the index b-tree damaged.
    await writeFile(path, await corruptIndexPage(await makeDatabase({ rows: 3000, targetBytes: 4 * MIN_PART_SIZE })));

    // The real check on its worker thread, whose verdict is let through only once the
    // store has acknowledged a part: the failure is certain to come mid-upload.
    let partStored!: () => void;
    const firstPart = new Promise<void>((resolve) => (partStored = resolve));
    let uploadedBeforeVerdict = 0;
    let verdictAt: number | undefined;
    const delayed: Runtime = {
      ...runtime,
      checkInBackground: (image, mode, what) => {
        const verdict = runtime.checkInBackground!(image, mode, what)!;
        verdict.catch(() => undefined);
        return firstPart.then(() => verdict).finally(() => (verdictAt = uploadedBeforeVerdict));
      },
    };
    const counting = (s: BackupStore): BackupStore => ({
      ...s,
      upload: (key, body, opts) =>
        s.upload(key, body, {
          ...opts,
          onProgress: (n) => {
            opts.onProgress?.(n);
            if (verdictAt === undefined) uploadedBeforeVerdict = n;
            if (n > 0) partStored();
          },
        }),
    });

    const err = await backupError(setup({ BACKUP_SOURCE: path, BACKUP_NAME: "bg-deep" }, delayed, counting).runner.run());
    expect(err.code).toBe("SQLITE_CORRUPT");
    expect(err.message).toMatch(/failed PRAGMA quick_check/);
    expect(verdictAt).toBeGreaterThanOrEqual(MIN_PART_SIZE);
    expect(await s3.keys("backups/bg-deep/")).toEqual([good.key]);
    expect(await s3.uploads()).toEqual([]);
    expect(messages("bg-deep")).toContain("image read; checking it beside the upload");
  });
});
