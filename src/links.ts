/**
 * Download links served by this server itself (LINK_MODE=worker), for stores that cannot
 * presign (an R2 binding) and for anyone who prefers one address for downloads:
 *
 *   {base}/download/{file}?name={name}&expires={unix seconds}&sig={base64url HMAC-SHA256}
 *
 * The HMAC (Web Crypto, so the same code runs on Workers and Node) is keyed with LINK_SECRET
 * and covers the method, the path, the database name and the expiry, serialised as a JSON
 * array so that no field can bleed into the next. Any change to any of them, or a link made
 * with another secret, fails with 403 LINK_INVALID; an expired one with 403 LINK_EXPIRED.
 * Signatures are compared in constant time. The query string is not logged (access-log.ts).
 */
import type { LinkMode } from "./config.js";
import { BackupError } from "./errors.js";
import type { BackupStore } from "./store/store.js";

export const DOWNLOAD_PREFIX = "/download/";
/** Bumped if the signed fields ever change: old links then fail as invalid, never as something else. */
const SIGNATURE_VERSION = "sqlite-edge-backup download v1";
/**
 * How far ahead of this instance's clock an expiry may lie beyond LINK_TTL_SECONDS: links
 * made by another instance (a second Node process, another Workers location) whose clock is
 * ahead are still accepted.
 */
export const CLOCK_SKEW_SECONDS = 60;

/** What a signature covers. `method` is the request's; HEAD counts as GET (same resource, no body). */
export interface DownloadClaim {
  method: string;
  file: string;
  /** The database (BACKUP_NAME or the BACKUP_SOURCES entry); always in the URL as ?name=. */
  name: string;
  /** Unix time in seconds after which the link is refused. */
  expires: number;
}

/**
 * LINK_MODE as it applies to `store`: the configured one, or presigned where the store can
 * sign URLs and worker where it cannot. Throws CONFIG_INVALID (at start) when the configured
 * mode cannot work: presigned on a store without presign, LINK_MODE=worker without
 * LINK_SECRET. A store that cannot presign and has no LINK_SECRET still backs up (links are
 * not what a backup needs): its link requests fail with 501 PRESIGN_UNSUPPORTED naming both.
 */
export function linkModeFor(config: { linkMode?: LinkMode; linkSecret?: string }, store: Pick<BackupStore, "canPresign" | "description">): LinkMode {
  const canPresign = store.canPresign !== false;
  const mode = config.linkMode ?? (canPresign ? "presigned" : "worker");
  if (mode === "presigned" && !canPresign) {
    throw new BackupError("CONFIG_INVALID", `Invalid configuration: LINK_MODE=presigned, but ${store.description} cannot sign URLs: use LINK_MODE=worker (or unset it) and set LINK_SECRET`, 500);
  }
  if (config.linkMode === "worker" && !config.linkSecret) {
    throw new BackupError("CONFIG_INVALID", `Invalid configuration: LINK_SECRET is required: LINK_MODE=worker and LINK_SECRET signs them (at least 32 random characters, e.g. \`openssl rand -hex 32\`)`, 500);
  }
  return mode;
}

export interface LinkSigner {
  sign(claim: DownloadClaim): Promise<string>;
  /**
   * Checks a request's claim; resolves when the link is valid now, else throws 403
   * LINK_INVALID or LINK_EXPIRED. `expires` and `sig` are the raw query values.
   */
  verify(claim: Omit<DownloadClaim, "expires"> & { expires: string | undefined; sig: string | undefined }, now: Date, ttlSeconds: number): Promise<void>;
}

const encoder = new TextEncoder();

function canonical(claim: DownloadClaim): Uint8Array<ArrayBuffer> {
  const method = claim.method.toUpperCase() === "HEAD" ? "GET" : claim.method.toUpperCase();
  return new Uint8Array(encoder.encode(JSON.stringify([SIGNATURE_VERSION, method, `${DOWNLOAD_PREFIX}${claim.file}`, claim.name, claim.expires])));
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** 32 bytes from 43 base64url characters, or undefined. */
function fromBase64url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]{43}$/.test(text)) return undefined;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  // The 43rd character carries 2 unused bits: only the canonical spelling is the signature, so
  // that a link has exactly one valid form (a changed last character must not still verify).
  return base64url(bytes) === text ? bytes : undefined;
}

/** Equal 32-byte MACs, without an early exit. */
function macsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

const invalid = () =>
  new BackupError(
    "LINK_INVALID",
    "this download link is not valid: it was changed or cut short, or made with another LINK_SECRET. Ask for a new one with GET /backups/{file}/link.",
    403,
  );

export function createLinkSigner(secret: string): LinkSigner {
  const key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = async (claim: DownloadClaim) => new Uint8Array(await crypto.subtle.sign("HMAC", await key, canonical(claim)));

  return {
    async sign(claim) {
      return base64url(await mac(claim));
    },

    async verify({ expires: rawExpires, sig, ...claim }, now, ttlSeconds) {
      // Up to 10 digits: Unix seconds until the year 2286; anything else is not our link.
      const expires = rawExpires !== undefined && /^\d{1,10}$/.test(rawExpires) ? Number(rawExpires) : undefined;
      const given = sig === undefined ? undefined : fromBase64url(sig);
      // The MAC is computed even for a malformed link, so a bad one costs the same as a good one.
      const expected = await mac({ ...claim, expires: expires ?? -1 });
      const ok = macsEqual(expected, given ?? new Uint8Array(32));
      if (expires === undefined || given === undefined || !ok) throw invalid();
      const nowSeconds = Math.floor(now.getTime() / 1000);
      if (nowSeconds > expires) {
        throw new BackupError("LINK_EXPIRED", `this download link expired at ${new Date(expires * 1000).toISOString()}. Ask for a new one with GET /backups/{file}/link.`, 403);
      }
      // Only this server makes these links, with at most LINK_TTL_SECONDS: one that lasts longer
      // was made under an older, longer TTL, which the present configuration no longer grants.
      if (expires - nowSeconds > ttlSeconds + CLOCK_SKEW_SECONDS) {
        throw new BackupError("LINK_INVALID", `this download link lasts longer than LINK_TTL_SECONDS (${ttlSeconds} s) allows. Ask for a new one with GET /backups/{file}/link.`, 403);
      }
    },
  };
}

/** The absolute /download URL of a claim signed as `sig`; `base` is an origin or LINK_BASE_URL (no trailing slash). */
export function downloadUrl(base: string, claim: Omit<DownloadClaim, "method">, sig: string): string {
  const query = new URLSearchParams({ name: claim.name, expires: String(claim.expires), sig });
  return `${base}${DOWNLOAD_PREFIX}${encodeURIComponent(claim.file)}?${query}`;
}
