/**
 * The command line as users run it: a separate Node process, configuration from the
 * environment, results on stdout, one-line errors on stderr, exit codes.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./helpers/cli.js";
import { corruptTableLeaf, dumpTables, makeDatabase, quickCheck, sha256, writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-cli-"));
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("cli", () => {
  it("backup prints the manifest, list shows it, link downloads it", async () => {
    const path = join(dir, "shop.db");
    const source = await writeDatabase(path, { rows: 300, targetBytes: 300_000 });
    const env = s3.env({ BACKUP_SOURCE: path });

    const backup = await cli(["backup"], env);
    expect(backup.stderr).toContain('"msg":"backup finished"');
    expect(backup.code).toBe(0);
    const manifest = JSON.parse(backup.stdout) as { key: string; file: string; sha256: string; bytes: number; gzipBytes: number };
    expect(manifest.key.startsWith("backups/shop/shop-")).toBe(true);
    expect(manifest.sha256).toBe(sha256(source));

    const list = await cli(["list", "--json"], env);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout) as { backups: { key: string; file: string; size: number }[] };
    expect(listed.backups).toHaveLength(1);
    expect(listed.backups[0]).toMatchObject({ key: manifest.key, file: manifest.file, size: manifest.gzipBytes });

    const plain = await cli(["list"], env);
    expect(plain.stdout).toContain(manifest.file);

    for (const which of [[], ["latest"], [manifest.file]]) {
      const link = await cli(["link", ...which], env);
      expect(link.code).toBe(0);
      const response = await fetch(link.stdout.trim());
      expect(response.status).toBe(200);
      const restored = new Uint8Array(gunzipSync(new Uint8Array(await response.arrayBuffer())));
      expect(sha256(restored)).toBe(manifest.sha256);
      expect(await dumpTables(restored)).toEqual(await dumpTables(source));
    }
  });

  it("a link whose signature is tampered with is refused by the store", async () => {
    const path = join(dir, "tamper.db");
    await writeDatabase(path, { rows: 5 });
    const env = s3.env({ BACKUP_SOURCE: path });
    expect((await cli(["backup"], env)).code).toBe(0);
    const url = new URL((await cli(["link"], env)).stdout.trim());
    const sig = url.searchParams.get("X-Amz-Signature") ?? "";
    url.searchParams.set("X-Amz-Signature", `${sig[0] === "0" ? "1" : "0"}${sig.slice(1)}`);
    expect((await fetch(url)).status).toBe(403);
  });

  it("CHECK=structure backs up a sound database; a damaged one exits 1 with SQLITE_CORRUPT and nothing is uploaded", async () => {
    const path = join(dir, "structure.db");
    const source = await writeDatabase(path, { rows: 300, targetBytes: 300_000 });
    const env = s3.env({ BACKUP_SOURCE: path, CHECK: "structure" });
    const backup = await cli(["backup"], env);
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = JSON.parse(backup.stdout) as { key: string; sha256: string; pageCount: number };
    expect(manifest.sha256).toBe(sha256(source));
    expect(manifest.pageCount).toBe(source.length / 4096);
    expect(backup.stderr).toContain('"check":"structure"');

    const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000 }));
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    await writeFile(path, bad);
    const refused = await cli(["backup"], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr.trim().split("\n").pop()).toMatch(/^error \[SQLITE_CORRUPT\]: file .*structure\.db failed the structural check \(CHECK=structure\): .*\bpage \d+/i);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    expect(await s3.keys("backups/structure/")).toEqual([manifest.key]);
    expect(await s3.uploads()).toEqual([]);
  });

  const errors: { label: string; args: string[]; env: (p: string) => Promise<Record<string, string>>; code: number; stderr: RegExp }[] = [
    { label: "not a database", args: ["backup"], env: async (p) => (await writeFile(p, "hello"), s3.env({ BACKUP_SOURCE: p })), code: 1, stderr: /^error \[NOT_SQLITE\]: file .* is not a SQLite database/ },
    { label: "invalid MAX_COUNT", args: ["backup"], env: async (p) => s3.env({ BACKUP_SOURCE: p, MAX_COUNT: "zero" }), code: 1, stderr: /^error \[CONFIG_INVALID\]: .*MAX_COUNT must be a whole number between 1 and 100000 \(got "zero"\)/ },
    { label: "a link to a name that is not a backup", args: ["link", "../../etc/passwd"], env: async (p) => s3.env({ BACKUP_SOURCE: p, BACKUP_NAME: "cli" }), code: 1, stderr: /^error \[INVALID_BACKUP_FILE\]/ },
    { label: "a link to an absent backup", args: ["link", "cli-2020-01-01T00-00-00-000Z-000000.sqlite.gz"], env: async (p) => s3.env({ BACKUP_SOURCE: p, BACKUP_NAME: "cli" }), code: 1, stderr: /^error \[BACKUP_NOT_FOUND\]/ },
    { label: "latest when there is none", args: ["link", "latest"], env: async (p) => s3.env({ BACKUP_SOURCE: p, BACKUP_NAME: "none-yet" }), code: 1, stderr: /^error \[BACKUP_NOT_FOUND\]: there are no backups of "none-yet"/ },
    { label: "an unknown command", args: ["frobnicate"], env: async (p) => s3.env({ BACKUP_SOURCE: p }), code: 2, stderr: /unknown command "frobnicate"/ },
    { label: "wrong credentials", args: ["backup"], env: async (p) => (await writeDatabase(p, { rows: 2 }), s3.env({ BACKUP_SOURCE: p, S3_SECRET_ACCESS_KEY: "cli-wrong-secret-value" })), code: 1, stderr: /^error \[STORE_AUTH\]/ },
  ];
  for (const e of errors) {
    it(`exits non-zero with one line naming the problem: ${e.label}`, async () => {
      const path = join(dir, `err-${e.label.replace(/\W+/g, "-")}.db`);
      const env = await e.env(path);
      const before = await s3.keys();
      const run = await cli(e.args, env);
      expect(run.code).toBe(e.code);
      const lastLine = run.stderr.trim().split("\n").pop() ?? "";
      expect(lastLine).toMatch(e.stderr);
      expect(run.stdout).toBe("");
      expect(run.stderr).not.toContain("cli-wrong-secret-value");
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack traces
      expect(await s3.keys()).toEqual(before);
      expect(await s3.uploads()).toEqual([]);
    });
  }
});
