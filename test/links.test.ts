/**
 * The pure parts of downloads served by the server: LINK_MODE / LINK_SECRET / LINK_BASE_URL
 * in the configuration, the mode a store gets by default, the signature (what it covers, how
 * a bad one fails) and the Range header's reading. The HTTP behaviour is in
 * test/api/download.test.ts (Node) and test/workers/download.test.ts (workerd).
 */
import { describe, expect, it } from "vitest";
import { LINK_SECRET_MIN_LENGTH, parseConfig, redactedConfig, secretsOf, type Env } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { contentRange, ifRangeHolds, parseRange, resolveRange } from "../src/http-range.js";
import { CLOCK_SKEW_SECONDS, createLinkSigner, downloadUrl, linkModeFor, type DownloadClaim } from "../src/links.js";

const BASE: Env = { BACKUP_SOURCE: "/data/app.db", S3_BUCKET: "my-bucket" };
const SECRET = "0123456789abcdef0123456789abcdef-link";
const parse = (env: Env) => parseConfig({ ...BASE, ...env }, { maxBytes: 2 ** 32 });

function configError(env: Env): string {
  try {
    parse(env);
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("CONFIG_INVALID");
    const e = err as BackupError;
    return `${e.message}\n${JSON.stringify(e)}`;
  }
  throw new Error("parseConfig should have thrown");
}

async function rejection(p: Promise<unknown>): Promise<BackupError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackupError);
  return err as BackupError;
}

describe("configuration", () => {
  it("LINK_MODE, LINK_SECRET and LINK_BASE_URL are unset by default", () => {
    const c = parse({});
    expect(c.linkMode).toBeUndefined();
    expect(c.linkSecret).toBeUndefined();
    expect(c.linkBaseUrl).toBeUndefined();
  });

  it("reads them (mode case-insensitive, base URL without trailing slash)", () => {
    const c = parse({ LINK_MODE: "Worker", LINK_SECRET: SECRET, LINK_BASE_URL: "https://backups.example.com/edge/" });
    expect(c).toMatchObject({ linkMode: "worker", linkSecret: SECRET, linkBaseUrl: "https://backups.example.com/edge" });
  });

  it("LINK_MODE=worker without LINK_SECRET is an error naming LINK_SECRET", () => {
    expect(configError({ LINK_MODE: "worker" })).toMatch(/LINK_SECRET is required with LINK_MODE=worker/);
  });

  it(`LINK_SECRET shorter than ${LINK_SECRET_MIN_LENGTH} characters is an error that says the length and not the value`, () => {
    const short = "x".repeat(LINK_SECRET_MIN_LENGTH - 1);
    const message = configError({ LINK_MODE: "worker", LINK_SECRET: short });
    expect(message).toContain(`LINK_SECRET must be at least ${LINK_SECRET_MIN_LENGTH} characters`);
    expect(message).not.toContain(short);
  });

  it("LINK_SECRET equal to API_KEY is refused, without either value", () => {
    const message = configError({ LINK_SECRET: SECRET, API_KEY: SECRET });
    expect(message).toContain("LINK_SECRET must differ from API_KEY");
    expect(message).not.toContain(SECRET);
  });

  it.each([
    [{ LINK_MODE: "proxy" }, "LINK_MODE must be one of presigned, worker"],
    [{ LINK_BASE_URL: "ftp://x" }, "LINK_BASE_URL must be an http(s) URL"],
    [{ LINK_BASE_URL: "https://x.example/?a=1" }, "LINK_BASE_URL must not have a query"],
  ])("%j → %s", (env, message) => {
    expect(configError(env)).toContain(message);
  });

  it("LINK_SECRET is a secret: redacted, and in the list the logger scrubs", () => {
    const c = parse({ LINK_SECRET: SECRET });
    expect(JSON.stringify(redactedConfig(c))).not.toContain(SECRET);
    expect(redactedConfig(c).linkSecret).toBe("[redacted]");
    expect(secretsOf(c)).toContain(SECRET);
  });
});

describe("linkModeFor: the default follows the store", () => {
  const presigning = { description: "s3://b" };
  const plain = { description: "r2 binding BACKUPS", canPresign: false };

  it("presigned where the store can sign (canPresign unset or true), worker where it cannot", () => {
    expect(linkModeFor({}, presigning)).toBe("presigned");
    expect(linkModeFor({}, { ...presigning, canPresign: true })).toBe("presigned");
    expect(linkModeFor({ linkSecret: SECRET }, plain)).toBe("worker");
  });

  it("LINK_MODE overrides the default", () => {
    expect(linkModeFor({ linkMode: "worker", linkSecret: SECRET }, presigning)).toBe("worker");
  });

  it("a store that cannot sign defaults to worker links even without LINK_SECRET (it still backs up), and cannot be LINK_MODE=presigned", () => {
    expect(linkModeFor({}, plain)).toBe("worker");
    expect(() => linkModeFor({ linkMode: "worker" }, plain)).toThrow(/LINK_SECRET is required: LINK_MODE=worker/);
    expect(() => linkModeFor({ linkMode: "presigned", linkSecret: SECRET }, plain)).toThrow(/LINK_MODE=presigned, but r2 binding BACKUPS cannot sign URLs/);
  });
});

describe("the signature", () => {
  const signer = createLinkSigner(SECRET);
  const now = new Date("2026-12-06T12:00:00.000Z");
  const nowSeconds = now.getTime() / 1000;
  const claim: DownloadClaim = { method: "GET", file: "app-2026-12-06T11-00-00-000Z-abcdef.sqlite.gz", name: "app", expires: nowSeconds + 900 };
  const verify = async (c: DownloadClaim, sig: string | undefined, at = now, ttl = 900) =>
    signer.verify({ method: c.method, file: c.file, name: c.name, expires: String(c.expires), sig }, at, ttl);

  it("is 43 base64url characters, the same for the same claim, different for each field", async () => {
    const sig = await signer.sign(claim);
    expect(sig).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await signer.sign({ ...claim })).toBe(sig);
    const variants = [
      { ...claim, method: "POST" },
      { ...claim, file: claim.file.replace("abcdef", "abcdee") },
      { ...claim, name: "app2" },
      { ...claim, expires: claim.expires + 1 },
    ];
    const sigs = await Promise.all(variants.map((v) => signer.sign(v)));
    expect(new Set([sig, ...sigs]).size).toBe(5);
    expect(await createLinkSigner(`${SECRET}!`).sign(claim)).not.toBe(sig);
  });

  it("fields cannot bleed into each other (a name with a newline is not a longer path)", async () => {
    const a = await signer.sign({ ...claim, file: "f\nx", name: "" });
    const b = await signer.sign({ ...claim, file: "f", name: "x\n" });
    expect(a).not.toBe(b);
  });

  it("has exactly one valid spelling: any other last character is refused, even one that decodes to the same bytes", async () => {
    // Over many claims, so that signatures ending in every low-bit pattern are met.
    for (let i = 0; i < 64; i++) {
      const c = { ...claim, expires: claim.expires - i };
      const sig = await signer.sign(c);
      await expect(verify(c, sig)).resolves.toBeUndefined();
      for (const last of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
        if (last === sig.at(-1)) continue;
        expect((await rejection(verify(c, sig.slice(0, -1) + last))).code).toBe("LINK_INVALID");
      }
    }
  });

  it("HEAD is judged as GET; other methods are not", async () => {
    const sig = await signer.sign(claim);
    await expect(verify({ ...claim, method: "HEAD" }, sig)).resolves.toBeUndefined();
    expect((await rejection(verify({ ...claim, method: "DELETE" }, sig))).code).toBe("LINK_INVALID");
  });

  it("valid until the second of its expiry, LINK_EXPIRED after; status 403", async () => {
    const sig = await signer.sign(claim);
    await expect(verify(claim, sig, new Date((claim.expires) * 1000 + 999))).resolves.toBeUndefined();
    const e = await rejection(verify(claim, sig, new Date((claim.expires + 1) * 1000)));
    expect([e.code, e.status]).toEqual(["LINK_EXPIRED", 403]);
  });

  it(`an expiry further ahead than LINK_TTL_SECONDS (+ ${CLOCK_SKEW_SECONDS} s of clock skew) is refused`, async () => {
    const sig = await signer.sign(claim);
    await expect(verify(claim, sig, now, 900 - CLOCK_SKEW_SECONDS)).resolves.toBeUndefined();
    expect((await rejection(verify(claim, sig, now, 900 - CLOCK_SKEW_SECONDS - 1))).code).toBe("LINK_INVALID");
  });

  it.each([
    ["missing", undefined],
    ["empty", ""],
    ["too short", "A".repeat(42)],
    ["not base64url", `${"A".repeat(42)}+`],
    ["padded", `${"A".repeat(43)}=`],
  ])("a %s signature → LINK_INVALID", async (_what, sig) => {
    const e = await rejection(verify(claim, sig));
    expect([e.code, e.status]).toEqual(["LINK_INVALID", 403]);
  });

  it.each(["", "-1", "1e9", "17954305560", "0x10", " 1795430556"])("expires=%j → LINK_INVALID", async (expires) => {
    const sig = await signer.sign(claim);
    const e = await rejection(signer.verify({ method: "GET", file: claim.file, name: "app", expires, sig }, now, 900));
    expect(e.code).toBe("LINK_INVALID");
  });

  it("downloadUrl puts name, expires and sig in the query, the file in the path", () => {
    expect(downloadUrl("https://w.example", claim, "SIG")).toBe(`https://w.example/download/${claim.file}?name=app&expires=${claim.expires}&sig=SIG`);
  });
});

describe("Range", () => {
  it.each([
    ["bytes=0-99", { start: 0, end: 99 }],
    ["bytes=100-", { start: 100 }],
    ["bytes=-50", { suffix: 50 }],
    ["BYTES = 5 - 9", undefined],
    ["bytes= 5-9", { start: 5, end: 9 }],
    ["bytes=9-5", undefined],
    ["bytes=0-1,4-5", undefined],
    ["bytes=-", undefined],
    ["bytes=1-2-3", undefined],
    ["pages=1-2", undefined],
    ["", undefined],
    [undefined, undefined],
    ["bytes=1234567890123456-", undefined],
  ])("parseRange(%j) → %j", (header, spec) => {
    expect(parseRange(header)).toEqual(spec);
  });

  it.each([
    [{ start: 0, end: 99 }, 1000, { offset: 0, length: 100 }],
    [{ start: 990, end: 2000 }, 1000, { offset: 990, length: 10 }],
    [{ start: 999 }, 1000, { offset: 999, length: 1 }],
    [{ start: 1000 }, 1000, "unsatisfiable"],
    [{ suffix: 10 }, 1000, { offset: 990, length: 10 }],
    [{ suffix: 5000 }, 1000, { offset: 0, length: 1000 }],
    [{ suffix: 0 }, 1000, "unsatisfiable"],
    [{ start: 0 }, 0, "unsatisfiable"],
  ] as const)("resolveRange(%j, %i) → %j", (spec, size, expected) => {
    expect(resolveRange(spec, size)).toEqual(expected);
  });

  it("contentRange for 206 and 416", () => {
    expect(contentRange({ offset: 10, length: 5 }, 100)).toBe("bytes 10-14/100");
    expect(contentRange(undefined, 100)).toBe("bytes */100");
  });

  it("If-Range: a strong equal ETag or the same second of Last-Modified keeps the range", () => {
    const modified = new Date("2026-12-06T10:00:00.500Z");
    expect(ifRangeHolds(undefined, '"abc"', modified)).toBe(true);
    expect(ifRangeHolds('"abc"', '"abc"', modified)).toBe(true);
    expect(ifRangeHolds('"abd"', '"abc"', modified)).toBe(false);
    expect(ifRangeHolds('W/"abc"', '"abc"', modified)).toBe(false);
    expect(ifRangeHolds(modified.toUTCString(), '"abc"', modified)).toBe(true);
    expect(ifRangeHolds(new Date("2026-12-06T10:00:01Z").toUTCString(), '"abc"', modified)).toBe(false);
    expect(ifRangeHolds("not a date", '"abc"', modified)).toBe(false);
  });
});
