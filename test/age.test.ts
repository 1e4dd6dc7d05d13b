/**
 * Encryption at rest, end to end, against the reference age CLI and a real S3 server:
 *
 * (a) this tool backs up with AGE_RECIPIENTS → the signed link (CLI `link`, and the API's
 *     GET /backups/{file}/link) → `age -d -i key.txt` → gunzip → the source database;
 * (b) `age -e -r <pub>` of a gzip of a real database, uploaded under a .sqlite.gz.age key
 *     with this tool's metadata → `restore` with AGE_IDENTITY_FILE → the same database;
 *
 * and the failures: no identity (IDENTITY_REQUIRED), a wrong one or an altered object
 * (DECRYPT_FAILED), each leaving the target as it was, plus several recipients, and plain
 * and encrypted backups of one name side by side in list, link, restore and retention.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../src/backup.js";
import { buildKey } from "../src/keys.js";
import { ageTool, type AgeKey } from "./helpers/age.js";
import { metadataOf, replaceBody } from "./helpers/backups.js";
import { cli, lastLine, type Run } from "./helpers/cli.js";
import { dumpTables, integrityCheck, makeDatabase, sha256, sqliteCli, writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";
import { Harness } from "./api/harness.js";

const age = ageTool();
const sqlite3 = sqliteCli();
let s3: TestStore;
let dir: string;
let sourcePath: string;
let source: Uint8Array;
let alice: AgeKey;
let bob: AgeKey;
let eve: AgeKey;

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-age-"));
  sourcePath = join(dir, "shop.db");
  source = await writeDatabase(sourcePath, { rows: 400, targetBytes: 700_000 });
  alice = await age.keygen(join(dir, "alice.txt"));
  bob = await age.keygen(join(dir, "bob.txt"));
  eve = await age.keygen(join(dir, "eve.txt"));
});
afterAll(async () => {
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const envFor = (name: string, extra: Record<string, string> = {}) => s3.env({ BACKUP_SOURCE: sourcePath, BACKUP_NAME: name, ...extra });

async function backup(name: string, extra: Record<string, string> = {}): Promise<Manifest> {
  const run = await cli(["backup"], envFor(name, extra));
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as Manifest;
}

let n = 0;
async function folder(): Promise<string> {
  const f = join(dir, `t${n++}`);
  await mkdir(f);
  return f;
}

async function objectBytes(key: string): Promise<Uint8Array> {
  const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return got.Body!.transformToByteArray();
}

/** The database in `bytes` is `expected`: same bytes, sound for sql.js and (if installed) the sqlite3 CLI. */
async function expectDatabase(path: string, expected: Uint8Array): Promise<void> {
  const bytes = new Uint8Array(await readFile(path));
  expect(bytes.length).toBe(expected.length);
  expect(sha256(bytes)).toBe(sha256(expected));
  expect(await integrityCheck(bytes)).toBe("ok");
  expect(await dumpTables(bytes)).toEqual(await dumpTables(expected));
  if (sqlite3) expect(sqlite3(path, "PRAGMA integrity_check")).toBe("ok");
}

function expectError(run: Run, pattern: RegExp): void {
  expect(run.code, run.stderr).toBe(1);
  expect(lastLine(run)).toMatch(pattern);
  expect(run.stdout).toBe("");
  expect(run.stderr).not.toMatch(/\n\s+at /);
  for (const k of [alice, bob, eve]) expect(run.stderr).not.toContain(k.identity);
}

describe("(a) backup with AGE_RECIPIENTS → signed link → age -d → gunzip", () => {
  let manifest: Manifest;

  beforeAll(async () => {
    manifest = await backup("sealed", { AGE_RECIPIENTS: alice.recipient, VERIFY: "full" });
  });

  it("stores an age file under .sqlite.gz.age with the plain image's sha256/bytes and format sqlite3+gzip+age", async () => {
    expect(manifest.key).toMatch(/^backups\/sealed\/sealed-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-[0-9a-f]{6}\.sqlite\.gz\.age$/);
    expect(manifest.file).toBe(manifest.key.split("/").pop());
    expect(manifest.encrypted).toBe(true);
    expect(manifest.verified).toBe("full"); // proved with the run's own file key: no identity on this side
    expect(manifest.sha256).toBe(sha256(source));
    expect(manifest.bytes).toBe(source.length);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: manifest.key }));
    expect(head.ContentType).toBe("application/octet-stream");
    expect(head.ContentDisposition).toBe(`attachment; filename="${manifest.file}"`);
    expect(head.Metadata).toMatchObject({ sha256: sha256(source), bytes: String(source.length), format: "sqlite3+gzip+age" });
    const body = await objectBytes(manifest.key);
    expect(Buffer.from(body.subarray(0, 22)).toString()).toBe("age-encryption.org/v1\n");
    expect(Buffer.from(body).includes(Buffer.from("SQLite format 3"))).toBe(false);
    // One X25519 stanza (the recipient) and nothing else in the header.
    const header = Buffer.from(body.subarray(0, 300)).toString("latin1");
    expect(header.match(/^-> /gm)).toHaveLength(1);
    expect(header).toMatch(/^-> X25519 /m);
    // gzip size + nonce + a 16-byte tag per 64 KiB chunk + the header.
    expect(body.length).toBeGreaterThan(manifest.gzipBytes + 16 + 16 * Math.ceil(manifest.gzipBytes / 65_536));
    expect(body.length).toBeLessThan(manifest.gzipBytes + 16 + 16 * Math.ceil(manifest.gzipBytes / 65_536) + 300);
  });

  it(`the CLI's link downloads it; ${age.kind === "cli" ? "age -d -i key.txt" : "typage"} decrypts, gunzip gives the source`, async () => {
    const link = await cli(["link", manifest.file], envFor("sealed"));
    expect(link.code, link.stderr).toBe(0);
    const res = await fetch(link.stdout.trim());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const plain = await age.decrypt(new Uint8Array(await res.arrayBuffer()), alice.path);
    const restored = join(await folder(), "app.db");
    await writeFile(restored, gunzipSync(plain));
    await expectDatabase(restored, source);
  });

  it("the API's GET /backups/{file}/link (and latest, and ?redirect=1) serve it the same way", async () => {
    const h = await new Harness().start();
    try {
      const w = await h.wire("api-sealed", { env: { AGE_RECIPIENTS: `${alice.recipient},${bob.recipient}` }, db: { rows: 120 } });
      const made = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
      expect(made.status, made.text).toBe(201);
      expect(made.json.encrypted).toBe(true);
      expect(made.json.file).toMatch(/\.sqlite\.gz\.age$/);
      const byFile = await h.call(w.app, `/backups/${made.json.file}/link`, h.bearer());
      expect(byFile.status, byFile.text).toBe(200);
      const latest = await h.call(w.app, "/backups/latest/link", h.bearer());
      expect(latest.json.key).toBe(made.json.key);
      const redirect = await h.call(w.app, `/backups/${made.json.file}/link?redirect=1`, h.bearer());
      expect(redirect.status).toBe(302);
      for (const url of [byFile.json.url as string, redirect.res.headers.get("location")!]) {
        const res = await fetch(url);
        const cipher = new Uint8Array(await res.arrayBuffer());
        expect(cipher.length).toBe(byFile.json.size);
        for (const key of [alice, bob]) {
          const path = join(await folder(), "api.db");
          await writeFile(path, gunzipSync(await age.decrypt(cipher, key.path)));
          await expectDatabase(path, w.source);
        }
      }
      // A name that is neither .sqlite.gz nor .sqlite.gz.age is still refused before any store call.
      const bad = await h.call(w.app, `/backups/${made.json.file}.age/link`, h.bearer());
      expect(bad.status).toBe(400);
      expect(bad.json.error.message).toContain(".sqlite.gz or .sqlite.gz.age");
      h.assertNoSecrets();
    } finally {
      await h.close();
    }
  });

  it("`verify` opens it with AGE_IDENTITY_FILE, and says it was encrypted", async () => {
    const run = await cli(["verify", manifest.file], envFor("sealed", { AGE_IDENTITY_FILE: alice.path }));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^ok ${manifest.key.replace(/\./g, "\\.")} \\(age-encrypted, decrypted\\): ${source.length} bytes, sha256 ${sha256(source)} matches`));
  });
});

describe("(b) age -e of a gzip of a real database → restore with AGE_IDENTITY_FILE", () => {
  let image: Uint8Array;
  let file: string;

  beforeAll(async () => {
    image = await makeDatabase({ rows: 700, targetBytes: 400_000 });
    const cipher = await age.encrypt(new Uint8Array(gzipSync(image)), [bob.recipient]);
    const key = buildKey("backups/", "foreign", new Date(), 0xabc, true);
    file = key.file;
    await s3.client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: key.key,
        Body: cipher,
        ContentType: "application/octet-stream",
        Metadata: { ...metadataOf(image), format: "sqlite3+gzip+age" },
      }),
    );
  });

  it("restores the identical database, and verify proves it", async () => {
    const target = join(await folder(), "restored.db");
    const run = await cli(["restore", "latest", "--to", target], envFor("foreign", { AGE_IDENTITY_FILE: bob.path }));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`restored backups/foreign/${file}`);
    await expectDatabase(target, image);
    const verify = await cli(["verify", file, "--json"], envFor("foreign", { AGE_IDENTITY_FILE: bob.path }));
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ file, bytes: image.length, sha256: sha256(image), integrity: "ok", encrypted: true });
  });

  it("AGE_IDENTITY (the key itself) works as well, and an identity file with several keys uses the matching one", async () => {
    const target = join(await folder(), "restored.db");
    const run = await cli(["restore", file, "--to", target, "--json"], envFor("foreign", { AGE_IDENTITY: bob.identity }));
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ restored: true, bytes: image.length, sha256: sha256(image) });
    await expectDatabase(target, image);

    const several = join(dir, "several.txt");
    await writeFile(several, `${await readFile(eve.path, "utf8")}\n${await readFile(bob.path, "utf8")}`);
    const target2 = join(await folder(), "restored.db");
    const again = await cli(["restore", file, "--to", target2], envFor("foreign", { AGE_IDENTITY_FILE: several }));
    expect(again.code, again.stderr).toBe(0);
    await expectDatabase(target2, image);
  });
});

describe("no identity, a wrong identity, an altered object: a clear error and the target as it was", () => {
  let manifest: Manifest;
  const old = new Uint8Array(Buffer.from("the database restore must not replace"));

  beforeAll(async () => {
    manifest = await backup("guarded", { AGE_RECIPIENTS: alice.recipient });
  });

  /** A folder with an existing target; after the failed run it must hold exactly that file, unchanged. */
  async function existingTarget(): Promise<{ at: string; target: string; unchanged: () => Promise<void> }> {
    const at = await folder();
    const target = join(at, "app.db");
    await writeFile(target, old);
    return {
      at,
      target,
      unchanged: async () => {
        expect(await readdir(at)).toEqual(["app.db"]);
        expect(Buffer.from(await readFile(target)).equals(Buffer.from(old))).toBe(true);
      },
    };
  }

  it("restore and verify without an identity: IDENTITY_REQUIRED naming both variables; nothing created", async () => {
    const t = await existingTarget();
    const run = await cli(["restore", "latest", "--to", t.target, "--force"], envFor("guarded"));
    expectError(run, new RegExp(`^error \\[IDENTITY_REQUIRED\\]: backup ${manifest.file.replace(/\./g, "\\.")} is encrypted with age: set AGE_IDENTITY .* or AGE_IDENTITY_FILE`));
    await t.unchanged();
    const empty = await folder();
    expectError(await cli(["restore", "latest", "--to", join(empty, "new.db")], envFor("guarded")), /IDENTITY_REQUIRED/);
    expect(await readdir(empty)).toEqual([]);
    expectError(await cli(["verify", "latest"], envFor("guarded")), /^error \[IDENTITY_REQUIRED\]: backup .* is encrypted with age/);
  });

  it("a wrong identity: DECRYPT_FAILED saying it is not a recipient; nothing created or replaced", async () => {
    const t = await existingTarget();
    const run = await cli(["restore", manifest.file, "--to", t.target, "--force"], envFor("guarded", { AGE_IDENTITY_FILE: eve.path }));
    expectError(run, /^error \[DECRYPT_FAILED\]: cannot decrypt backup .*\.sqlite\.gz\.age: the identity given is not one of its recipients/);
    await t.unchanged();
    expectError(await cli(["verify", manifest.file], envFor("guarded", { AGE_IDENTITY: eve.identity })), /^error \[DECRYPT_FAILED\]: .*not one of its recipients/);
  });

  it("an unreadable or malformed identity file: CONFIG_INVALID naming the file, not its content", async () => {
    expectError(await cli(["verify", "latest"], envFor("guarded", { AGE_IDENTITY_FILE: join(dir, "missing.txt") })), /^error \[CONFIG_INVALID\]: AGE_IDENTITY_FILE .*missing\.txt does not exist\.$/);
    const bad = join(dir, "bad.txt");
    await writeFile(bad, `# key\n${alice.identity.slice(0, 40)}\n`);
    const run = await cli(["restore", "latest", "--to", join(await folder(), "x.db")], envFor("guarded", { AGE_IDENTITY_FILE: bad }));
    expectError(run, /^error \[CONFIG_INVALID\]: AGE_IDENTITY_FILE .*bad\.txt line 2 is not an age X25519 identity/);
    expect(run.stderr).not.toContain(alice.identity.slice(16, 40));
  });

  it("an altered byte in the ciphertext: DECRYPT_FAILED, the target unchanged, no temp file left", async () => {
    const tampered = await backup("tampered", { AGE_RECIPIENTS: alice.recipient });
    await replaceBody(s3, tampered.key, (body) => {
      const out = body.slice();
      const at = Math.floor(out.length * 0.6);
      out[at] = out[at]! ^ 0x20;
      return out;
    });
    const t = await existingTarget();
    const run = await cli(["restore", "latest", "--to", t.target, "--force"], envFor("tampered", { AGE_IDENTITY_FILE: alice.path }));
    expectError(run, /^error \[DECRYPT_FAILED\]: cannot decrypt backup .*: its content fails authentication .*altered, truncated or damaged/);
    await t.unchanged();
    expectError(await cli(["verify", "latest"], envFor("tampered", { AGE_IDENTITY_FILE: alice.path })), /^error \[DECRYPT_FAILED\]: .*fails authentication/);
  });

  it("an .age key whose metadata says plain gzip is not trusted (VERIFY_FAILED before any download)", async () => {
    const key = buildKey("backups/", "mislabelled", new Date(), 1, true);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key.key, Body: gzipSync(source), Metadata: metadataOf(source) }));
    const t = await existingTarget();
    const run = await cli(["restore", "latest", "--to", t.target, "--force"], envFor("mislabelled", { AGE_IDENTITY_FILE: alice.path }));
    expectError(run, /^error \[VERIFY_FAILED\]: .* cannot be verified: .*\(format is "sqlite3\+gzip", expected "sqlite3\+gzip\+age" for a key ending in \.sqlite\.gz\.age/);
    await t.unchanged();
  });
});

describe("several recipients", () => {
  it("every identity restores the backup on its own; age -d works with each", async () => {
    const manifest = await backup("shared", { AGE_RECIPIENTS: `${alice.recipient}, ${bob.recipient}`, VERIFY: "full" });
    expect(manifest.verified).toBe("full");
    const cipher = await objectBytes(manifest.key);
    expect(Buffer.from(cipher.subarray(0, 400)).toString("latin1").match(/^-> X25519 /gm)).toHaveLength(2);
    for (const key of [alice, bob]) {
      expect(sha256(gunzipSync(await age.decrypt(cipher, key.path)))).toBe(sha256(source));
      const target = join(await folder(), "app.db");
      const run = await cli(["restore", "latest", "--to", target], envFor("shared", { AGE_IDENTITY_FILE: key.path }));
      expect(run.code, run.stderr).toBe(0);
      await expectDatabase(target, source);
    }
    await expect(age.decrypt(cipher, eve.path)).rejects.toThrow();
  });
});

describe("plain and encrypted backups of one name", () => {
  it("are listed, linked, restored and pruned together, oldest first whatever their kind", async () => {
    const plain1 = await backup("mixed", { MAX_COUNT: "3" });
    const sealed1 = await backup("mixed", { MAX_COUNT: "3", AGE_RECIPIENTS: alice.recipient });
    const plain2 = await backup("mixed", { MAX_COUNT: "3" });
    expect([plain1.encrypted, sealed1.encrypted, plain2.encrypted]).toEqual([false, true, false]);
    expect(plain1.file).toMatch(/\.sqlite\.gz$/);

    const listed = await cli(["list", "--json"], envFor("mixed"));
    expect((JSON.parse(listed.stdout) as { backups: { key: string }[] }).backups.map((b) => b.key)).toEqual([plain2.key, sealed1.key, plain1.key]);

    // The fourth backup (encrypted) pushes out the oldest one, a plain one.
    const sealed2 = await backup("mixed", { MAX_COUNT: "3", AGE_RECIPIENTS: alice.recipient });
    expect(sealed2.pruned).toEqual([plain1.key]);
    expect(await s3.keys("backups/mixed/")).toEqual([plain2.key, sealed1.key, sealed2.key].sort());

    // A plain backup needs no identity; an encrypted one does, whatever else is around it.
    const plainTarget = join(await folder(), "plain.db");
    const run = await cli(["restore", plain2.file, "--to", plainTarget], envFor("mixed"));
    expect(run.code, run.stderr).toBe(0);
    await expectDatabase(plainTarget, source);
    expectError(await cli(["restore", "latest", "--to", join(await folder(), "x.db")], envFor("mixed")), /IDENTITY_REQUIRED/);
    const sealedTarget = join(await folder(), "sealed.db");
    const run2 = await cli(["restore", sealed1.file, "--to", sealedTarget], envFor("mixed", { AGE_IDENTITY: alice.identity }));
    expect(run2.code, run2.stderr).toBe(0);
    await expectDatabase(sealedTarget, source);

    // The link of a plain backup is still plain gzip.
    const link = await cli(["link", plain2.file], envFor("mixed"));
    const res = await fetch(link.stdout.trim());
    expect(res.headers.get("content-type")).toBe("application/gzip");
    expect(sha256(gunzipSync(new Uint8Array(await res.arrayBuffer())))).toBe(sha256(source));
  });
});

describe("configuration", () => {
  it("a bad AGE_RECIPIENTS stops the backup before anything is read or stored, without echoing the value", async () => {
    const run = await cli(["backup"], envFor("badkeys", { AGE_RECIPIENTS: `${alice.recipient},${bob.identity}` }));
    expectError(run, /^error \[CONFIG_INVALID\]: Invalid configuration: AGE_RECIPIENTS entry 2 of 2 is a secret key \(an identity\), not a recipient/);
    expect(await s3.keys("backups/badkeys/")).toEqual([]);
  });
});
