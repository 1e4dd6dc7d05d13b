/**
 * Encryption at rest with age (https://age-encryption.org/v1), through typage
 * (`age-encryption`: pure JS + WebCrypto, so the same code runs on Node and Workers).
 *
 * A backup made with AGE_RECIPIENTS is the gzip stream encrypted to every recipient: any one
 * of their identities decrypts it, with this tool (AGE_IDENTITY / AGE_IDENTITY_FILE) or with
 * `age -d -i key.txt`. Both directions stream in 64 KiB chunks; nothing is buffered whole.
 *
 * Only X25519 recipients (`age1…`, what `age-keygen` prints) are accepted: they are the ones
 * every age implementation reads, and the ones the config can check for typos up front.
 */
import type { Identity, Recipient, Stanza } from "age-encryption";
import { BackupError } from "./errors.js";

/** `age1` + 58 bech32 characters (32 bytes + checksum). Lowercase, as age-keygen prints it. */
const RECIPIENT_FORM = /^age1[02-9ac-hj-np-z]{58}$/;
/** `AGE-SECRET-KEY-1` + 58 bech32 characters, uppercase, as age-keygen writes it. */
const IDENTITY_FORM = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;

export const RECIPIENT_EXPECTED = "an age X25519 public key: age1 followed by 58 characters, as printed by `age-keygen` or `age-keygen -y key.txt`";
export const IDENTITY_EXPECTED = "an age X25519 identity: AGE-SECRET-KEY-1 followed by 58 characters, as written by `age-keygen`";

/** age (typage) itself, loaded by the operations that encrypt or decrypt: not for parsing the config. */
const age = () => import("age-encryption");

const BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

/**
 * Whether a key whose form the regexps above accepted decodes as age does: a valid bech32
 * checksum (BIP 173) over the human-readable part and the data, and 32 bytes of data with
 * zero padding bits (58 characters = 52 five-bit words + 6 of checksum = 256 bits + 4 of
 * padding). The same verdict as typage's addRecipient/addIdentity (test/encrypt.test.ts
 * compares them), without loading typage to parse the configuration.
 */
function checksumOk(key: string): boolean {
  const lower = key.toLowerCase();
  const sep = lower.lastIndexOf("1");
  const hrp = lower.slice(0, sep);
  const words = [...lower.slice(sep + 1)].map((c) => BECH32_CHARSET.indexOf(c));
  if (sep < 1 || words.length !== 58 || words.some((w) => w < 0)) return false;
  let chk = 1;
  const step = (v: number) => {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= BECH32_GENERATORS[i]!;
  };
  for (const c of hrp) step(c.charCodeAt(0) >>> 5);
  step(0);
  for (const c of hrp) step(c.charCodeAt(0) & 31);
  for (const w of words) step(w);
  return chk === 1 && (words[51]! & 0b1111) === 0;
}

/**
 * AGE_RECIPIENTS → the list of public keys (commas, spaces or newlines between them;
 * duplicates dropped). Problems name the entry by position and never echo it: a secret key
 * pasted by mistake must not end up in a log.
 */
export function parseRecipients(raw: string): { recipients: string[]; problems: string[] } {
  const entries = raw.split(/[\s,]+/).filter((e) => e !== "");
  const problems: string[] = [];
  const recipients: string[] = [];
  entries.forEach((entry, i) => {
    const which = entries.length > 1 ? `entry ${i + 1} of ${entries.length}` : "the value";
    if (/^AGE-SECRET-KEY-/i.test(entry)) {
      problems.push(`${which} is a secret key (an identity), not a recipient: use its public key (\`age-keygen -y key.txt\`) and keep the secret key away from the backup process`);
    } else if (!RECIPIENT_FORM.test(entry)) {
      problems.push(`${which} is not ${RECIPIENT_EXPECTED}${/^age1(pq|tag)/.test(entry) ? " (post-quantum and tag recipients are not supported)" : ""}`);
    } else if (!checksumOk(entry)) {
      problems.push(`${which} has the form of an age public key but its checksum is wrong (a typo or a truncated copy?)`);
    } else if (!recipients.includes(entry)) {
      recipients.push(entry);
    }
  });
  if (entries.length === 0) problems.push(`is empty: give one or more of ${RECIPIENT_EXPECTED}`);
  return { recipients, problems };
}

/** Whether `s` is a well-formed X25519 identity (checksum included). */
export function isIdentity(s: string): boolean {
  return IDENTITY_FORM.test(s) && checksumOk(s);
}

/**
 * The identities of an age identity file (`age-keygen -o key.txt`): one AGE-SECRET-KEY-1…
 * per line, `#` comments and blank lines ignored. Throws CONFIG_INVALID naming the file and
 * line, never its content.
 */
export function parseIdentityFile(text: string, path: string): string[] {
  const bad = (why: string) => new BackupError("CONFIG_INVALID", `AGE_IDENTITY_FILE ${path} ${why}`, 400);
  if (text.includes("-----BEGIN AGE ENCRYPTED FILE-----") || text.startsWith("age-encryption.org/")) {
    throw bad("is itself age-encrypted (a passphrase-protected identity): decrypt it first (`age -d key.txt.age > key.txt`) and point AGE_IDENTITY_FILE at the result.");
  }
  const identities: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!isIdentity(line)) throw bad(`line ${i + 1} is not ${IDENTITY_EXPECTED} (only such lines, # comments and blank lines may appear).`);
    identities.push(line);
  }
  if (identities.length === 0) throw bad(`holds no identity: expected a line with ${IDENTITY_EXPECTED}.`);
  return identities;
}

/** Remembers the file key it is handed, adding nothing to the header. */
class FileKeyKeeper implements Recipient {
  fileKey: Uint8Array | undefined;
  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    this.fileKey = fileKey.slice();
    return [];
  }
}

export interface Encryption {
  /** The age file: header, nonce, then the payload in 64 KiB chunks as `plain` arrives. */
  stream: ReadableStream<Uint8Array>;
  /**
   * This file's random key. Kept only in memory for the run, so that VERIFY=full can prove
   * the uploaded object decrypts and matches without any identity on the backup side.
   */
  fileKey: Uint8Array;
}

/** Encrypt a stream to `recipients` (already validated by parseRecipients). */
export async function encryptStream(plain: ReadableStream<Uint8Array>, recipients: readonly string[]): Promise<Encryption> {
  if (recipients.length === 0) throw new Error("encryptStream needs at least one recipient");
  const { Encrypter } = await age();
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const keeper = new FileKeyKeeper();
  e.addRecipient(keeper);
  const stream: unknown = await e.encrypt(plain);
  // typage returns a stream only for a ReadableStream input of its own realm; anything else
  // would be the encryption of a stringified object: fail loudly instead.
  if (!(stream instanceof ReadableStream) || !keeper.fileKey) throw new Error("age encryption did not return a stream");
  return { stream: stream as ReadableStream<Uint8Array>, fileKey: keeper.fileKey };
}

/** How to open an age file: with identities (restore, verify) or with the run's own file key (verify after upload). */
export type Decryption =
  | { identities: readonly string[] }
  | {
      fileKey: Uint8Array;
      /** The header must hold exactly this many X25519 stanzas: one per AGE_RECIPIENTS entry. */
      recipients: number;
    };

/** Opens with a known file key; the header MAC is still checked with it. */
class FileKeyIdentity implements Identity {
  stanzas: Stanza[] = [];
  constructor(private readonly fileKey: Uint8Array) {}
  unwrapFileKey(stanzas: Stanza[]): Uint8Array {
    this.stanzas = stanzas;
    return this.fileKey;
  }
}

const NO_MATCH = "no identity matched any of the file's recipients";

/**
 * An age stream → the plaintext stream. The header is read and authenticated before this
 * resolves (so a wrong identity fails before anything is written anywhere); every 64 KiB
 * chunk is authenticated before it is passed on, so altered bytes never come out.
 * Failures are DECRYPT_FAILED naming `what` and the problem.
 */
export async function decryptStream(body: ReadableStream<Uint8Array>, how: Decryption, what: string): Promise<ReadableStream<Uint8Array>> {
  const { Decrypter } = await age();
  const d = new Decrypter();
  let keyed: FileKeyIdentity | undefined;
  if ("identities" in how) {
    for (const identity of how.identities) d.addIdentity(identity);
  } else {
    keyed = new FileKeyIdentity(how.fileKey);
    d.addIdentity(keyed);
  }
  let plain: ReadableStream<Uint8Array>;
  try {
    plain = await d.decrypt(body);
  } catch (err) {
    await body.cancel(err).catch(() => undefined);
    throw headerError(err, how, what);
  }
  if (keyed) {
    const x25519 = keyed.stanzas.filter((s) => s.args[0] === "X25519").length;
    if (x25519 !== keyed.stanzas.length || x25519 !== (how as { recipients: number }).recipients) {
      await plain.cancel().catch(() => undefined);
      throw new BackupError(
        "DECRYPT_FAILED",
        `${what} has ${keyed.stanzas.length} recipient stanza(s) (${x25519} X25519), expected one X25519 stanza per AGE_RECIPIENTS entry (${(how as { recipients: number }).recipients}).`,
        502,
      );
    }
  }
  return mapErrors(plain, (err) => payloadError(err, what));
}

function detail(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function headerError(err: unknown, how: Decryption, what: string): BackupError {
  if (err instanceof BackupError) return err;
  const message = detail(err);
  if (message === NO_MATCH && "identities" in how) {
    const n = how.identities.length;
    return new BackupError(
      "DECRYPT_FAILED",
      `cannot decrypt ${what}: ${n === 1 ? "the identity given is not" : `none of the ${n} identities given is`} one of its recipients. Use the secret key (AGE_IDENTITY or AGE_IDENTITY_FILE) that matches a public key in the AGE_RECIPIENTS the backup was made with.`,
      400,
      { cause: err },
    );
  }
  if (message === NO_MATCH || message === "invalid header HMAC") {
    return new BackupError("DECRYPT_FAILED", `cannot decrypt ${what}: its age header fails authentication (it was altered or damaged after the backup was made).`, 502, { cause: err });
  }
  return new BackupError("DECRYPT_FAILED", `cannot decrypt ${what}: it is not a valid age file (${message}).`, 502, { cause: err });
}

function payloadError(err: unknown, what: string): BackupError {
  if (err instanceof BackupError) return err;
  return new BackupError(
    "DECRYPT_FAILED",
    `cannot decrypt ${what}: its content fails authentication (${detail(err)}): the object was altered, truncated or damaged after the backup was made.`,
    502,
    { cause: err },
  );
}

/** Pass chunks through on demand; an error of `source` becomes `map(error)`. */
function mapErrors(source: ReadableStream<Uint8Array>, map: (err: unknown) => Error): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (err) {
          controller.error(map(err));
          return;
        }
        if (result.done) controller.close();
        else controller.enqueue(result.value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
