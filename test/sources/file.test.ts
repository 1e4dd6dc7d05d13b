import { appendFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeFiles } from "../../functions/node-runtime.js";
import { BackupError } from "../../src/errors.js";
import { fileSource, type FileAccess } from "../../src/sources/file.js";
import { READ_CHUNK_BYTES } from "../../src/sources/source.js";
import { sha256, writeDatabase } from "../helpers/db.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-file-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<BackupError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackupError);
  return err as BackupError;
}

describe("file source", () => {
  it("reads a file larger than one chunk exactly, reporting progress", async () => {
    const path = join(dir, "big.db");
    const bytes = await writeDatabase(path, { targetBytes: 2.5 * READ_CHUNK_BYTES });
    const progress: number[] = [];
    const image = await fileSource(nodeFiles, path).read({ maxBytes: 2 ** 32 - 1, onProgress: (n) => progress.push(n) });
    expect(image.bytes.length).toBe(bytes.length);
    expect(sha256(image.bytes)).toBe(sha256(bytes));
    expect(image.origin).toBe(`file ${path}`);
    expect(progress.length).toBe(Math.ceil(bytes.length / READ_CHUNK_BYTES));
    expect(progress.at(-1)).toBe(bytes.length);
  });

  it("refuses a directory, a missing file and a file over the limit", async () => {
    await mkdir(join(dir, "adir.db"));
    expect((await failure(fileSource(nodeFiles, join(dir, "adir.db")).read({ maxBytes: 1e9 }))).code).toBe("SOURCE_UNREADABLE");
    expect((await failure(fileSource(nodeFiles, join(dir, "nope.db")).read({ maxBytes: 1e9 }))).code).toBe("SOURCE_NOT_FOUND");
    const path = join(dir, "limit.db");
    await writeDatabase(path, { rows: 50 });
    const tooLarge = await failure(fileSource(nodeFiles, path).read({ maxBytes: 4096 }));
    expect(tooLarge.code).toBe("SOURCE_TOO_LARGE");
    expect(tooLarge.status).toBe(413);
  });

  it("refuses a hot rollback journal but accepts an empty WAL and a zeroed (persisted) journal", async () => {
    const path = join(dir, "journal.db");
    await writeDatabase(path, { rows: 5 });
    await writeFile(`${path}-wal`, "");
    await writeFile(`${path}-journal`, new Uint8Array(512));
    expect((await fileSource(nodeFiles, path).read({ maxBytes: 1e9 })).bytes.length).toBeGreaterThan(0);

    const hot = new Uint8Array(512);
    hot.set([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]);
    await writeFile(`${path}-journal`, hot);
    const err = await failure(fileSource(nodeFiles, path).read({ maxBytes: 1e9 }));
    expect(err.code).toBe("HOT_JOURNAL");
    expect(err.status).toBe(409);
  });

  it("detects a file that grows while it is read", async () => {
    const path = join(dir, "growing.db");
    await writeDatabase(path, { targetBytes: 2 * READ_CHUNK_BYTES });
    let appended = false;
    // The real file system, with a real append landing between two reads.
    const files: FileAccess = {
      stat: nodeFiles.stat,
      async open(p, flags) {
        const handle = await nodeFiles.open(p, flags);
        return {
          async read(buffer, offset, length, position) {
            const r = await handle.read(buffer, offset, length, position);
            if (!appended && p === path) {
              appended = true;
              await appendFile(path, new Uint8Array(4096));
            }
            return r;
          },
          close: () => handle.close(),
        };
      },
    };
    const err = await failure(fileSource(files, path).read({ maxBytes: 1e9 }));
    expect(err.code).toBe("SOURCE_CHANGED");
    expect(err.message).toMatch(/while it was being read/);
  });
});
