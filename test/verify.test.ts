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
import { verifyBackup } from "../src/verify.js";
import { flipMiddleByte, putBackup, replaceBody } from "./helpers/backups.js";
import { corruptIndexPage, makeDatabase, sha256 } from "./helpers/db.js";
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
  it("proves a sound backup: size, sha256, page layout and integrity_check", async () => {
    const { key, file } = await putBackup(s3, { name: "good", image });
    const report = await verifyBackup(store, runtime, key, { maxBytes: MAX });
    expect(report).toMatchObject({ key, file, bytes: image.length, sha256: sha256(image), pageSize: 4096, pageCount: image.length / 4096, integrity: "ok" });
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

  it("a corrupt database inside a well-formed backup fails integrity_check (SQLITE_CORRUPT)", async () => {
    const corrupt = await corruptIndexPage(image);
    const { key } = await putBackup(s3, { name: "corrupt", image: corrupt });
    const err = await failure(key);
    expect(err.code).toBe("SQLITE_CORRUPT");
    expect(err.message).toMatch(/failed PRAGMA integrity_check|SQLite cannot read/);
    expect(err.message).toContain(key);
    expect(err.message).toMatch(/\. Its content matches its sha256 metadata, so the database was already damaged when this backup was made: use an older backup\.$/);
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
