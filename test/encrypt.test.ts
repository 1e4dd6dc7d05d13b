/**
 * src/encrypt.ts against the reference age CLI: what this tool encrypts, `age -d` opens;
 * what `age -e` makes, this tool opens; and every way an age file can be wrong (wrong key,
 * altered header, altered or truncated payload, not age at all) is a DECRYPT_FAILED that
 * says which, with nothing altered ever coming out.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptStream, encryptStream, isIdentity, parseIdentityFile, parseRecipients } from "../src/encrypt.js";
import { BackupError } from "../src/errors.js";
import { ageTool, type AgeKey } from "./helpers/age.js";
import { backupError } from "./helpers/errors.js";

const age = ageTool();
let dir: string;
let alice: AgeKey;
let bob: AgeKey;
let eve: AgeKey;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-encrypt-"));
  alice = await age.keygen(join(dir, "alice.txt"));
  bob = await age.keygen(join(dir, "bob.txt"));
  eve = await age.keygen(join(dir, "eve.txt"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A stream of `bytes` in `chunk`-sized pieces, produced on demand. */
function streamOf(bytes: Uint8Array, chunk = 100_000): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream(
    {
      pull(c) {
        if (at >= bytes.length) return c.close();
        c.enqueue(bytes.slice(at, at + chunk));
        at += chunk;
      },
    },
    { highWaterMark: 0 },
  );
}

const collect = async (s: ReadableStream<Uint8Array>) => new Uint8Array(await new Response(s).arrayBuffer());

async function encrypt(plain: Uint8Array, recipients: string[]): Promise<Uint8Array> {
  return collect((await encryptStream(streamOf(plain), recipients)).stream);
}

async function decrypt(cipher: Uint8Array, identities: string[]): Promise<Uint8Array> {
  return collect(await decryptStream(streamOf(cipher, 7_000), { identities }, "backup x.sqlite.gz.age"));
}

describe("parseRecipients (AGE_RECIPIENTS)", () => {
  it("accepts keys separated by commas, spaces or newlines, and drops repeats", () => {
    const raw = ` ${alice.recipient},${bob.recipient}\n${eve.recipient}  ${alice.recipient}\n`;
    expect(parseRecipients(raw)).toEqual({ recipients: [alice.recipient, bob.recipient, eve.recipient], problems: [] });
  });

  it("names a bad entry by position and never echoes it: a pasted secret key, a typo, another kind of key", () => {
    const typo = `${bob.recipient.slice(0, -1)}${bob.recipient.endsWith("q") ? "p" : "q"}`;
    const { recipients, problems } = parseRecipients([alice.recipient, bob.identity, typo, "age1pq1abc", "ssh-ed25519"].join(","));
    expect(recipients).toEqual([alice.recipient]);
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/^entry 2 of 5 is a secret key \(an identity\), not a recipient: use its public key/);
    expect(problems[1]).toMatch(/^entry 3 of 5 has the form of an age public key but its checksum is wrong/);
    expect(problems[2]).toMatch(/^entry 4 of 5 is not an age X25519 public key: age1 followed by 58 characters.*post-quantum and tag recipients are not supported/);
    expect(problems[3]).toMatch(/^entry 5 of 5 is not an age X25519 public key/);
    const all = problems.join("\n");
    for (const value of [bob.identity, bob.identity.slice(16, 40), typo, "ssh-ed25519"]) expect(all).not.toContain(value);
  });

  it("an uppercase public key (some tools print bech32 uppercase) is not taken: age-keygen prints lowercase", () => {
    expect(parseRecipients(alice.recipient.toUpperCase()).problems[0]).toMatch(/^the value is not an age X25519 public key/);
  });
});

describe("identities (AGE_IDENTITY, AGE_IDENTITY_FILE)", () => {
  it("isIdentity accepts what age-keygen writes and checks the checksum", () => {
    expect(isIdentity(alice.identity)).toBe(true);
    const last = alice.identity.at(-1) === "Q" ? "P" : "Q";
    expect(isIdentity(`${alice.identity.slice(0, -1)}${last}`)).toBe(false);
    expect(isIdentity(alice.identity.toLowerCase())).toBe(false);
    expect(isIdentity(alice.recipient)).toBe(false);
  });

  it("parseIdentityFile reads age-keygen's file: comments skipped, several keys kept in order", async () => {
    const { readFile } = await import("node:fs/promises");
    expect(parseIdentityFile(await readFile(alice.path, "utf8"), alice.path)).toEqual([alice.identity]);
    const both = `${await readFile(alice.path, "utf8")}\r\n\n# second\n${bob.identity}\n`;
    expect(parseIdentityFile(both, "/k")).toEqual([alice.identity, bob.identity]);
  });

  it("a bad identity file is CONFIG_INVALID naming the file and line, never its content", () => {
    const cases: [string, RegExp][] = [
      [`# only comments\n\n`, /^AGE_IDENTITY_FILE \/keys\/k\.txt holds no identity/],
      [`# c\n${alice.recipient}\n`, /^AGE_IDENTITY_FILE \/keys\/k\.txt line 2 is not an age X25519 identity/],
      [`${alice.identity}x\n`, /line 1 is not an age X25519 identity/],
      [`-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n`, /is itself age-encrypted \(a passphrase-protected identity\): decrypt it first/],
    ];
    for (const [text, message] of cases) {
      const err = (() => {
        try {
          parseIdentityFile(text, "/keys/k.txt");
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("CONFIG_INVALID");
      expect((err as BackupError).message).toMatch(message);
      expect((err as BackupError).message).not.toContain(alice.identity.slice(16));
    }
  });
});

describe(`encryptStream → ${age.kind === "cli" ? "age -d" : "typage (age CLI missing)"}`, () => {
  // Empty, one byte, exactly one 64 KiB chunk, one more, and several chunks.
  it.each([0, 1, 65_536, 65_537, 1_000_003])("%i bytes decrypt to the same bytes", async (n) => {
    const plain = new Uint8Array(randomBytes(n));
    const cipher = await encrypt(plain, [alice.recipient]);
    // Header + 16-byte nonce + 16-byte tag per started 64 KiB chunk (at least one).
    expect(cipher.length).toBeGreaterThan(n + 16 + 16 * Math.max(1, Math.ceil(n / 65_536)));
    expect(Buffer.from(await age.decrypt(cipher, alice.path)).equals(plain)).toBe(true);
  });

  it("with several recipients, each identity decrypts alone; one not among them cannot", async () => {
    const plain = new Uint8Array(randomBytes(200_000));
    const cipher = await encrypt(plain, [alice.recipient, bob.recipient]);
    expect(Buffer.from(await age.decrypt(cipher, alice.path)).equals(plain)).toBe(true);
    expect(Buffer.from(await age.decrypt(cipher, bob.path)).equals(plain)).toBe(true);
    await expect(age.decrypt(cipher, eve.path)).rejects.toThrow(/no identity matched|recipient/i);
  });

  it("streams: the first encrypted chunks come out before the input has been read whole", async () => {
    let pulled = 0;
    const chunks = 200; // 200 × 64 KiB = 12.5 MiB, produced only when asked for
    const source = new ReadableStream<Uint8Array>(
      {
        pull(c) {
          if (pulled === chunks) return c.close();
          pulled += 1;
          c.enqueue(new Uint8Array(65_536).fill(pulled & 0xff));
        },
      },
      { highWaterMark: 0 },
    );
    const { stream } = await encryptStream(source, [alice.recipient]);
    const reader = stream.getReader();
    let out = 0;
    while (out < 3 * 65_536) out += (await reader.read()).value!.byteLength;
    expect(pulled).toBeLessThan(20);
    await reader.cancel();
  });

  it("returns this file's own random key (different for every file), which opens it without any identity", async () => {
    const plain = new Uint8Array(randomBytes(150_000));
    const a = await encryptStream(streamOf(plain), [alice.recipient, bob.recipient]);
    const cipher = await collect(a.stream);
    const b = await encryptStream(streamOf(plain), [alice.recipient, bob.recipient]);
    await b.stream.cancel();
    expect(a.fileKey).toHaveLength(16);
    expect(Buffer.from(a.fileKey).equals(Buffer.from(b.fileKey))).toBe(false);
    const opened = await collect(await decryptStream(streamOf(cipher), { fileKey: a.fileKey, recipients: 2 }, "k"));
    expect(Buffer.from(opened).equals(plain)).toBe(true);
    // The header must hold one stanza per recipient: a file for fewer is not what was asked for.
    const err = await backupError(decryptStream(streamOf(cipher), { fileKey: a.fileKey, recipients: 3 }, "backup k.age"));
    expect(err.code).toBe("DECRYPT_FAILED");
    expect(err.message).toMatch(/backup k\.age has 2 recipient stanza\(s\) \(2 X25519\), expected one X25519 stanza per AGE_RECIPIENTS entry \(3\)/);
    // Another file's key does not open it: the header MAC fails.
    const wrong = await backupError(decryptStream(streamOf(cipher), { fileKey: b.fileKey, recipients: 2 }, "backup k.age"));
    expect(wrong.message).toMatch(/its age header fails authentication/);
  });
});

describe(`${age.kind === "cli" ? "age -e" : "typage (age CLI missing)"} → decryptStream`, () => {
  it("opens a multi-chunk file with the matching identity, among others", async () => {
    const plain = new Uint8Array(randomBytes(300_001));
    const cipher = await age.encrypt(plain, [bob.recipient]);
    expect(Buffer.from(await decrypt(cipher, [bob.identity])).equals(plain)).toBe(true);
    expect(Buffer.from(await decrypt(cipher, [eve.identity, alice.identity, bob.identity])).equals(plain)).toBe(true);
  });

  it("a wrong identity is DECRYPT_FAILED 400 that says so, before any plaintext", async () => {
    const cipher = await age.encrypt(new Uint8Array(randomBytes(1000)), [alice.recipient, bob.recipient]);
    const one = await backupError(decrypt(cipher, [eve.identity]));
    expect([one.code, one.status]).toEqual(["DECRYPT_FAILED", 400]);
    expect(one.message).toMatch(/^cannot decrypt backup x\.sqlite\.gz\.age: the identity given is not one of its recipients\. Use the secret key \(AGE_IDENTITY or AGE_IDENTITY_FILE\)/);
    const two = await backupError(decrypt(cipher, [eve.identity, (await age.keygen(join(dir, "mallory.txt"))).identity]));
    expect(two.message).toMatch(/none of the 2 identities given is one of its recipients/);
    for (const e of [one, two]) expect(e.message).not.toContain(eve.identity.slice(16));
  });

  it("an altered payload byte is DECRYPT_FAILED 502, and no chunk from the altered one on comes out", async () => {
    const plain = new Uint8Array(randomBytes(5 * 65_536));
    const cipher = await age.encrypt(plain, [alice.recipient]);
    const at = cipher.length - 2 * 65_536; // inside the 4th of 5 chunks
    const altered = cipher.slice();
    altered[at] = altered[at]! ^ 0x01;
    const out = await decryptStream(streamOf(altered, 65_552), { identities: [alice.identity] }, "backup x.age");
    const reader = out.getReader();
    let received = 0;
    const err = await (async () => {
      for (;;) {
        try {
          const r = await reader.read();
          if (r.done) return undefined;
          // Whatever came out before the failure is the true plaintext's beginning.
          expect(Buffer.from(r.value).equals(Buffer.from(plain.subarray(received, received + r.value.byteLength)))).toBe(true);
          received += r.value.byteLength;
        } catch (e) {
          return e as BackupError;
        }
      }
    })();
    expect(err).toBeInstanceOf(BackupError);
    expect([err!.code, err!.status]).toEqual(["DECRYPT_FAILED", 502]);
    expect(err!.message).toMatch(/^cannot decrypt backup x\.age: its content fails authentication \(.+\): the object was altered, truncated or damaged/);
    expect(received).toBeLessThanOrEqual(3 * 65_536);
  });

  it("a truncated file (even at a chunk boundary) and an altered header are DECRYPT_FAILED", async () => {
    const plain = new Uint8Array(randomBytes(3 * 65_536));
    const cipher = await age.encrypt(plain, [alice.recipient]);
    const cut = await backupError(decrypt(cipher.subarray(0, cipher.length - (65_536 + 16)), [alice.identity]));
    expect(cut.code).toBe("DECRYPT_FAILED");
    expect(cut.message).toMatch(/fails authentication/);
    // The MAC line ("--- <base64>") sits right before the first "\n" after "---".
    const text = Buffer.from(cipher.subarray(0, 400)).toString("latin1");
    const macAt = text.indexOf("\n--- ") + 5;
    const header = cipher.slice();
    header[macAt] = header[macAt] === 0x41 ? 0x42 : 0x41; // another base64 letter
    const mac = await backupError(decrypt(header, [alice.identity]));
    expect([mac.code, mac.status]).toEqual(["DECRYPT_FAILED", 502]);
    expect(mac.message).toMatch(/its age header fails authentication \(it was altered or damaged after the backup was made\)/);
  });

  it("something that is not an age file is DECRYPT_FAILED saying so", async () => {
    const gz = execFileSync("gzip", ["-c"], { input: Buffer.from("not encrypted") });
    const err = await backupError(decrypt(new Uint8Array(gz), [alice.identity]));
    expect([err.code, err.status]).toEqual(["DECRYPT_FAILED", 502]);
    expect(err.message).toMatch(/^cannot decrypt backup x\.sqlite\.gz\.age: it is not a valid age file \(invalid version/);
    const empty = await backupError(decrypt(new Uint8Array(0), [alice.identity]));
    expect(empty.message).toMatch(/it is not a valid age file/);
  });
});

describe("an identity file written by hand", () => {
  it("with Windows line ends and surrounding spaces still parses", async () => {
    const path = join(dir, "crlf.txt");
    await writeFile(path, `# public key: ${alice.recipient}\r\n  ${alice.identity}  \r\n`);
    const { readFile } = await import("node:fs/promises");
    expect(parseIdentityFile(await readFile(path, "utf8"), path)).toEqual([alice.identity]);
  });
});
