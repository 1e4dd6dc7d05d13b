/**
 * `verifyBackup` against a real S3 server and real SQLite images: a sound backup is proved,
 * and every way a stored object can disagree with its metadata is named.
 */
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime } from "../functions/node-runtime.js";
import { BackupError } from "../src/errors.js";
import { jsonLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createS3Store } from "../src/store/s3.js";
import type { BackupStore } from "../src/store/store.js";
import { verifyBackup, verifyContent } from "../src/verify.js";
import { flipMiddleByte, putBackup, replaceBody } from "./helpers/backups.js";
import { corruptIndexPage, corruptTableLeaf, makeDatabase, quickCheck, sha256 } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";
import { backupError } from "./helpers/errors.js";
import { capture } from "./helpers/log-capture.js";

let s3: TestStore;
let store: BackupStore;
let runtime: Runtime;
let image: Uint8Array;
const MAX = 4_294_967_295;

beforeAll(async () => {
  s3 = await startTestStore();
  store = createS3Store({ endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, prefix: "backups/", accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, forcePathStyle: true });
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => capture("verify log", line) }));
  image = await makeDatabase({ rows: 400, targetBytes: 200_000 });
});
afterAll(async () => {
  await s3?.close();
});

async function failure(key: string, maxBytes = MAX): Promise<BackupError> {
  return backupError(verifyBackup(store, runtime, key, { maxBytes }));
}

describe("verifyBackup", () => {
  it("proves a sound backup: size, sha256, page layout and the structural check", async () => {
    const { key, file } = await putBackup(s3, { name: "good", image });
    const report = await verifyBackup(store, runtime, key, { maxBytes: MAX });
    expect(report).toMatchObject({ key, file, bytes: image.length, sha256: sha256(image), pageSize: 4096, pageCount: image.length / 4096, integrity: "ok", check: "structure" });
    expect(report.sqliteVersion).toMatch(/^3\.\d+\.\d+$/);
  });

  it("a flipped byte in the gzip body: does not decompress", async () => {
    const { key } = await putBackup(s3, { name: "flip", image });
    await replaceBody(s3, key, flipMiddleByte);
    const err = await failure(key);
    expect(err.code).toBe("VERIFY_FAILED");
    expect(err.message).toMatch(/does not decompress|decompresses to/);
    expect(err.message).toContain(key);
  });

  it("valid gzip whose content is not what the metadata's sha256 describes", async () => {
    const other = image.slice();
    other[image.length - 1] = other[image.length - 1]! ^ 0x01; // same size, one bit different
    const { key } = await putBackup(s3, { name: "tampered", image });
    await replaceBody(s3, key, () => gzipSync(other));
    const err = await failure(key);
    expect(err.code).toBe("VERIFY_FAILED");
    expect(err.message).toContain(`the sha256 of its ${image.length} bytes is ${sha256(other)}, its metadata says ${sha256(image)}`);
  });

  it("content longer or shorter than the bytes metadata: names both sizes", async () => {
    const longer = await putBackup(s3, { name: "sizes", image, metadata: { bytes: String(image.length - 4096) } });
    const e1 = await failure(longer.key);
    expect(e1.code).toBe("VERIFY_FAILED");
    expect(e1.message).toContain(`decompresses to more than ${image.length - 4096} bytes, its metadata says ${image.length - 4096}`);

    const shorter = await putBackup(s3, { name: "sizes", image, metadata: { bytes: String(image.length + 4096) } });
    const e2 = await failure(shorter.key);
    expect(e2.code).toBe("VERIFY_FAILED");
    expect(e2.message).toContain(`decompresses to ${image.length} bytes, its metadata says ${image.length + 4096}`);
  });

  it("an object that is not gzip at all does not decompress", async () => {
    const { key } = await putBackup(s3, { name: "plain", image, body: image });
    const err = await failure(key);
    expect(err.code).toBe("VERIFY_FAILED");
    expect(err.message).toMatch(/does not decompress \(.*after 0 decompressed bytes\)/);
  });

  it("metadata that is missing or invalid is named, field by field, before any download", async () => {
    const cases: { metadata: Record<string, string | undefined>; message: RegExp }[] = [
      { metadata: { format: undefined }, message: /format is null, expected "sqlite3\+gzip"/ },
      { metadata: { format: "sqlite3" }, message: /format is "sqlite3"/ },
      { metadata: { sha256: undefined }, message: /sha256 is null, expected 64 hex digits/ },
      { metadata: { sha256: "abc" }, message: /sha256 is "abc"/ },
      { metadata: { bytes: undefined }, message: /bytes is null, expected a positive whole number/ },
      { metadata: { bytes: "12kB" }, message: /bytes is "12kB"/ },
      { metadata: { bytes: "0" }, message: /bytes is "0"/ },
      { metadata: { format: undefined, bytes: "x" }, message: /format is null.*bytes is "x"/ },
    ];
    for (const c of cases) {
      const { key } = await putBackup(s3, { name: "meta", image, metadata: c.metadata });
      const err = await failure(key);
      expect(err.code).toBe("VERIFY_FAILED");
      expect(err.message).toMatch(c.message);
      expect(err.message).toContain("its metadata is not that of a backup made by this tool");
    }
  });

  it("refuses a size over MAX_BYTES instead of allocating it", async () => {
    const { key } = await putBackup(s3, { name: "huge", image });
    const err = await failure(key, image.length - 1);
    expect(err.code).toBe("VERIFY_FAILED");
    expect(err.message).toContain(`bytes is ${image.length}, over MAX_BYTES (${image.length - 1})`);
  });

  it("a corrupt database inside a well-formed backup fails the structural check (SQLITE_CORRUPT)", async () => {
    const corrupt = await corruptIndexPage(image);
    const { key } = await putBackup(s3, { name: "corrupt", image: corrupt });
    const err = await failure(key);
    expect(err.code).toBe("SQLITE_CORRUPT");
    expect(err.message).toMatch(/failed the structural check: Tree \d+ page \d+: /);
    expect(err.message).toContain(key);
    expect(err.message).toMatch(/\. Its content matches its sha256 metadata, so the database was already damaged when this backup was made: use an older backup\.$/);
  });

  it("a damaged table b-tree that SQLite's quick_check rejects: SQLITE_CORRUPT naming the tree and page, found as the pages stream", async () => {
    const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000, targetBytes: 300_000 }));
    const sqlite = await quickCheck(bad);
    expect(sqlite).not.toEqual(["ok"]);
    const { key } = await putBackup(s3, { name: "bad-leaf", image: bad });
    const err = await failure(key);
    expect({ code: err.code, status: err.status }).toEqual({ code: "SQLITE_CORRUPT", status: 422 });
    expect(err.message).toMatch(new RegExp(`^backup ${key} failed the structural check: Tree \\d+ page \\d+`));
    // The same tree and page that SQLite names.
    const where = /Tree (\d+) page (\d+)/.exec(sqlite.join("\n"));
    expect(where).not.toBeNull();
    expect(err.message).toContain(`Tree ${where![1]} page ${where![2]}`);
    expect(err.message).toMatch(/Its content matches its sha256 metadata, so the database was already damaged when this backup was made: use an older backup\.$/);
  });

  it("content that matches its sha256 but is not a database: NOT_SQLITE", async () => {
    const text = new TextEncoder().encode("<html>not a database</html>".padEnd(8192, " "));
    const { key } = await putBackup(s3, { name: "html", image: text, metadata: { "page-size": "4096", "page-count": "2" } });
    const err = await failure(key);
    expect(err.code).toBe("NOT_SQLITE");
  });

  it("an absent key is BACKUP_NOT_FOUND", async () => {
    const err = await failure("backups/gone/gone-2020-01-01T00-00-00-000Z-000000.sqlite.gz");
    expect(err.code).toBe("BACKUP_NOT_FOUND");
  });
});

describe("verifyContent (VERIFY=full)", () => {
  const expectedOf = (img: Uint8Array) => ({ sha256: sha256(img), bytes: img.length });

  it("a sound upload reads back: sha256, size and the structural check in one pass", async () => {
    const { key } = await putBackup(s3, { name: "vc-good", image });
    await expect(verifyContent(store, runtime, key, expectedOf(image))).resolves.toBeUndefined();
  });

  it("an upload whose image SQLite's quick_check rejects, with its true sha256: SQLITE_CORRUPT with the structural finding", async () => {
    const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000, targetBytes: 300_000 }));
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    const { key } = await putBackup(s3, { name: "vc-bad", image: bad });
    const err = await backupError(verifyContent(store, runtime, key, expectedOf(bad)));
    expect(err.code).toBe("SQLITE_CORRUPT");
    expect(err.message).toMatch(new RegExp(`^${key} is the image that was uploaded \\(its sha256 matches\\), but it fails the structural check: Tree \\d+ page \\d+`));
  });

  it("content other than what was uploaded: VERIFY_FAILED naming both sizes and digests; longer content stops at the expected size", async () => {
    const { key } = await putBackup(s3, { name: "vc-other", image });
    const other = image.slice();
    other[5000] = other[5000]! ^ 1;
    const changed = await backupError(verifyContent(store, runtime, key, expectedOf(other)));
    expect(changed.code).toBe("VERIFY_FAILED");
    expect(changed.message).toBe(`verification of ${key} failed: read back ${image.length} bytes with sha256 ${sha256(image)}, expected ${image.length} bytes with sha256 ${sha256(other)}.`);

    const shorter = await backupError(verifyContent(store, runtime, key, { sha256: sha256(image), bytes: image.length - 4096 }));
    expect(shorter.code).toBe("VERIFY_FAILED");
    expect(shorter.message).toContain(`read back more than ${image.length - 4096} bytes, expected ${image.length - 4096} bytes`);

    const longer = await backupError(verifyContent(store, runtime, key, { sha256: sha256(image), bytes: image.length + 4096 }));
    expect(longer.message).toContain(`read back ${image.length} bytes, expected ${image.length + 4096} bytes`);
  });

  it("a body that does not gunzip: VERIFY_FAILED, does not decompress", async () => {
    const { key } = await putBackup(s3, { name: "vc-flip", image });
    await replaceBody(s3, key, flipMiddleByte);
    const err = await backupError(verifyContent(store, runtime, key, expectedOf(image)));
    expect(err.code).toBe("VERIFY_FAILED");
    expect(err.message).toMatch(/does not decompress|read back/);
  });
});
