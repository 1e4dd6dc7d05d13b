/**
 * The configuration checks age keys without loading typage (src/encrypt.ts checksumOk, so
 * that commands which never encrypt start faster): its verdict must be typage's own, for
 * valid keys and for every kind of typo in them.
 */
import { Decrypter, Encrypter, generateIdentity, identityToRecipient } from "age-encryption";
import { describe, expect, it } from "vitest";
import { isIdentity, parseRecipients } from "../src/encrypt.js";

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const typageAccepts = (check: () => void) => {
  try {
    check();
    return true;
  } catch {
    return false;
  }
};

/** Deterministic variants of a key: every position changed to a few other characters. */
function variants(key: string, prefixLength: number, upper: boolean): string[] {
  const out: string[] = [];
  for (let at = prefixLength; at < key.length; at++) {
    for (const step of [1, 7, 19]) {
      const c = CHARSET[(CHARSET.indexOf(key[at]!.toLowerCase()) + step) % 32]!;
      out.push(key.slice(0, at) + (upper ? c.toUpperCase() : c) + key.slice(at + 1));
    }
  }
  return out;
}

/** A bech32 string (BIP 173) of `words`, checksum computed here. */
function bech32(hrp: string, words: number[]): string {
  const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  const polymod = (values: number[]) => {
    let chk = 1;
    for (const v of values) {
      const top = chk >>> 25;
      chk = ((chk & 0x1ffffff) << 5) ^ v;
      for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i]!;
    }
    return chk;
  };
  const expanded = [...[...hrp].map((c) => c.charCodeAt(0) >>> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
  const mod = polymod([...expanded, ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = Array.from({ length: 6 }, (_, i) => (mod >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...words, ...checksum].map((w) => CHARSET[w]).join("")}`;
}

describe("age key checks without typage", () => {
  it("agree with typage on well-formed checksums around the 4 padding bits", () => {
    for (const last of [0, 1, 8, 16, 31]) {
      const words = Array.from({ length: 52 }, (_, i) => (i * 7 + 3) % 32);
      words[51] = last;
      const r = bech32("age", words);
      expect(parseRecipients(r).problems.length === 0, r).toBe(typageAccepts(() => new Encrypter().addRecipient(r)));
      const i = bech32("age-secret-key-", words).toUpperCase();
      expect(isIdentity(i), i).toBe(typageAccepts(() => new Decrypter().addIdentity(i)));
      if (last === 0) expect(isIdentity(i)).toBe(true);
    }
  });


  it("agree with typage on valid keys and on every single-character typo", async () => {
    let compared = 0;
    for (let n = 0; n < 12; n++) {
      const identity = await generateIdentity();
      const recipient = await identityToRecipient(identity);
      expect(isIdentity(identity)).toBe(true);
      expect(parseRecipients(recipient).problems).toEqual([]);
      for (const r of variants(recipient, 4, false)) {
        expect(parseRecipients(r).problems.length === 0, r).toBe(typageAccepts(() => new Encrypter().addRecipient(r)));
        compared++;
      }
      for (const i of variants(identity, 16, true)) {
        expect(isIdentity(i), i).toBe(typageAccepts(() => new Decrypter().addIdentity(i)));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(4000);
  });
});
