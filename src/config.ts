/**
 * Environment → typed, validated configuration. Pure: the same function runs on Node and
 * Workers; the runtime passes in only what differs (its default MAX_BYTES).
 * An invalid value fails here, at start, with a message naming the variable and what it
 * accepts. Secret values are never echoed.
 */
import { z } from "zod";
import { BackupError } from "./errors.js";
import { IDENTITY_EXPECTED, isIdentity, parseRecipients } from "./encrypt.js";
import { NAME_PATTERN } from "./keys.js";
import type { LockMode } from "./lock.js";
import { describeNotifyUrl, notifyUrlSecrets, type NotifyConfig } from "./notify.js";

export type Env = Readonly<Record<string, string | undefined>>;

/** Every variable of the contract (docs/configuration.md, generated from config-reference.ts); all are strings or unset. */
export const CONFIG_VARIABLES = [
  "BACKUP_SOURCE", "BACKUP_SOURCE_HEADERS", "BACKUP_NAME", "BACKUP_SOURCES",
  "R2_BUCKET", "S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "S3_PREFIX", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_FORCE_PATH_STYLE",
  "MAX_COUNT", "KEEP_DAILY", "KEEP_WEEKLY", "KEEP_MONTHLY", "API_KEY", "LINK_TTL_SECONDS", "GZIP_LEVEL", "CHECK", "SCHEDULE", "VERIFY", "MAX_BYTES", "PORT", "HOST",
  "READ_ATTEMPTS", "S3_MAX_ATTEMPTS", "S3_TIMEOUT_SECONDS",
  "LOCK", "LOCK_TTL_SECONDS", "SKIP_UNCHANGED", "CORS_ORIGINS",
  "NOTIFY_URL", "NOTIFY_ON", "NOTIFY_FORMAT",
  "AGE_RECIPIENTS", "AGE_IDENTITY", "AGE_IDENTITY_FILE",
  "LINK_MODE", "LINK_SECRET", "LINK_BASE_URL",
  "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_BASE_URL",
] as const;
export type ConfigVariable = (typeof CONFIG_VARIABLES)[number];

export type SourceSpec =
  | { kind: "file"; path: string }
  | { kind: "url"; url: string; headers: Record<string, string> }
  | { kind: "s3"; bucket: string; key: string }
  /** An object in an R2 bucket bound to the Worker as `binding` (Workers only). */
  | { kind: "r2"; binding: string; key: string }
  /** A Cloudflare D1 database, exported through the REST API with CLOUDFLARE_API_TOKEN (src/sources/d1.ts). */
  | { kind: "d1"; accountId: string; databaseId: string };

/**
 * CHECK: `quick` and `full` are SQLite's own PRAGMA quick_check and integrity_check (sql.js opens
 * the image); `structure` is SQLite's b-tree checks in TypeScript over the pages
 * (src/sqlite/structure.ts), without opening the image in SQLite.
 */
export type CheckMode = "none" | "structure" | "quick" | "full";
/**
 * CHECK as configured: a mode, or `auto` (the default) — `quick` where the image fits the
 * runtime's memory (Runtime.quickCheckMaxBytes, a size known before reading), else the
 * streamed `structure` check, so that no database is too large to back up.
 */
export type CheckSetting = CheckMode | "auto";
export type VerifyMode = "head" | "full";
/**
 * How GET /backups/{file}/link answers: `presigned` — a URL the store signed (the download
 * goes straight to the bucket); `worker` — a URL of this server, /download/{file}, signed
 * with LINK_SECRET (src/links.ts). Unset: the store's default (presigned where it can sign).
 */
export type LinkMode = "presigned" | "worker";

export interface S3Config {
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  /** Tries per request (the first one included) for transient failures: 5xx, SlowDown, resets, timeouts. */
  maxAttempts?: number;
  /** A request that has not got its response (or, on Node, whose socket is idle) this long fails and is retried. */
  timeoutMs?: number;
}

/** One database to back up: BACKUP_SOURCE (+ BACKUP_NAME), or one entry of BACKUP_SOURCES. */
export interface Database {
  name: string;
  source: SourceSpec;
  maxCount: number;
}

export interface Config {
  /** The first (with BACKUP_SOURCE: the only) database; see `databases` and `configFor`. */
  source: SourceSpec;
  name: string;
  /** Every database of this deployment, in the order given; names are unique. */
  databases: Database[];
  /**
   * The S3 API settings; with R2_BUCKET only `prefix` (and the s3:// sources' credentials)
   * apply, and `bucket` is empty.
   */
  s3: S3Config;
  /** R2_BUCKET: the name of the Worker's R2 binding that is the store, in place of S3_*. */
  r2Bucket?: string;
  maxCount: number;
  /** KEEP_DAILY/WEEKLY/MONTHLY (0 = rule off); any > 0 turns on GFS retention (src/retention.ts). */
  keep: { daily: number; weekly: number; monthly: number };
  apiKey?: string;
  linkTtlSeconds: number;
  /** LINK_MODE; unset = the store decides (src/links.ts linkModeFor). */
  linkMode?: LinkMode;
  /** LINK_SECRET: the HMAC key of /download links (at least LINK_SECRET_MIN_LENGTH characters). */
  linkSecret?: string;
  /** LINK_BASE_URL: the public URL /download links start with (no trailing slash); unset = the asking request's origin. */
  linkBaseUrl?: string;
  gzipLevel: number;
  check: CheckSetting;
  verify: VerifyMode;
  schedule: string;
  maxBytes: number;
  /** Reads of a file source before a database that keeps changing is given up on. */
  readAttempts: number;
  /** Cross-instance lease (src/lock.ts): how it is taken, and how long it lives unrenewed. */
  lock: { mode: LockMode; ttlMs: number };
  /** Skip the upload when the image equals the newest backup's (same sha256). */
  skipUnchanged: boolean;
  /** Origins allowed to call the API from a browser; empty: no CORS headers at all. */
  corsOrigins: string[];
  /** NOTIFY_URL and how it is used; unset = no alerts. */
  notify?: NotifyConfig;
  /** AGE_RECIPIENTS: age public keys every backup is encrypted to; unset = backups are not encrypted. */
  ageRecipients?: string[];
  /** AGE_IDENTITY: a secret key that decrypts encrypted backups (verify, restore). */
  ageIdentity?: string;
  /** AGE_IDENTITY_FILE: the path of an age identity file; read by the Node CLI only. */
  ageIdentityFile?: string;
  /** For d1:// sources: CLOUDFLARE_API_TOKEN, and CLOUDFLARE_API_BASE_URL when set. */
  cloudflare?: { apiToken?: string; apiBase?: string };
  port: number;
  host: string;
}

export interface RuntimeDefaults {
  /** Largest source accepted when MAX_BYTES is unset (Node: 1 TiB, Workers: 4 GiB, what 5 minutes of CPU stream). */
  maxBytes: number;
  /**
   * The runtime is a Worker, whose `env` carries bindings: R2_BUCKET and r2:// sources name
   * them. Elsewhere (Node) both are configuration errors.
   */
  bindings?: boolean;
}

/** Variables whose values must never appear in messages or logs. */
// NOTIFY_URL: a ping or webhook URL usually is its own credential (a UUID or token in the path).
// BACKUP_SOURCES: its entries may carry headers (tokens) and URLs with credentials.
export const SECRET_VARIABLES = ["S3_SECRET_ACCESS_KEY", "API_KEY", "BACKUP_SOURCE_HEADERS", "BACKUP_SOURCES", "NOTIFY_URL", "AGE_IDENTITY", "LINK_SECRET", "CLOUDFLARE_API_TOKEN"] as const;

/** LINK_SECRET's shortest length: 32 random characters are ≥ 128 bits for base64 or hex alike. */
export const LINK_SECRET_MIN_LENGTH = 32;

export const LINK_TTL_MAX_SECONDS = 604_800; // presigned SigV4 URLs cannot outlive 7 days
/** MAX_BYTES's ceiling: streamed backups hold no image, so only byte counting limits them. */
export const MAX_BYTES_CEILING = 2 ** 50;
/**
 * The single-buffer ceiling: typed arrays and sql.js's in-memory file cannot exceed it, so
 * CHECK=quick|full (which hold the image) refuse larger sources whatever MAX_BYTES says.
 */
export const IN_MEMORY_MAX_BYTES = 2 ** 32 - 1;

/** A Worker binding's name: a JavaScript identifier (wrangler.toml `binding = "BACKUPS"`). */
const BINDING_PATTERN = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;
const CRON_FIELD = /^[\d*/,\-A-Za-z?LW#]+$/;

// Empty strings count as unset: `FOO=` in a .env file means "no value", not "invalid".
const isUnset = (v: unknown) => v === undefined || (typeof v === "string" && v.trim() === "");
const optional = () => z.preprocess((v) => (isUnset(v) ? undefined : v), z.string().trim().optional());
const withDefault = (fallback: string) => z.preprocess((v) => (isUnset(v) ? fallback : v), z.string().trim());

const integer = (min: number, max: number, fallback: number) =>
  withDefault(String(fallback))
    .pipe(z.string().regex(/^\d+$/, `must be a whole number between ${min} and ${max}`))
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, `must be between ${min} and ${max}`)
        .max(max, `must be between ${min} and ${max}`),
    );

const oneOf = <T extends string>(values: readonly [T, ...T[]], fallback: T) =>
  withDefault(fallback)
    .transform((v) => v.toLowerCase())
    .pipe(z.enum(values, { error: `must be one of ${values.join(", ")}` }));

const bool = (fallback: boolean | undefined) =>
  optional()
    .transform((v) => (v === undefined ? fallback : v))
    .pipe(
      z.union([z.boolean(), z.enum(["true", "false", "1", "0"])], { error: "must be true or false" }).optional(),
    )
    .transform((v) => (v === undefined ? undefined : v === true || v === "true" || v === "1"));

const httpUrl = (what: string) =>
  optional().refine((v) => v === undefined || isHttpUrl(v), `must be an http(s) URL of ${what}`);

/** Request headers for a URL source: BACKUP_SOURCE_HEADERS, or an entry's `headers` in BACKUP_SOURCES. */
const HEADERS = z.record(z.string(), z.string());

// One schema per variable, parsed one by one so that every problem is reported at once.
const fields = {
  BACKUP_SOURCE: optional(),
  BACKUP_SOURCES: optional(),
  BACKUP_SOURCE_HEADERS: optional()
    .transform((v, ctx) => {
      if (v === undefined) return {};
      try {
        const parsed: unknown = JSON.parse(v);
        const headers = HEADERS.safeParse(parsed);
        if (headers.success) return headers.data;
      } catch {
        // fall through to the issue below
      }
      ctx.addIssue({ code: "custom", message: 'must be a JSON object of string header values, e.g. {"X-API-Key":"…"}' });
      return z.NEVER;
    }),
  BACKUP_NAME: optional().refine((v) => v === undefined || NAME_PATTERN.test(v), {
    message: `must match ${NAME_PATTERN.source} (lowercase letters, digits, '.', '_', '-'; at most 63 characters)`,
  }),
  R2_BUCKET: optional().refine(
    (v) => v === undefined || BINDING_PATTERN.test(v),
    "must be the name of an R2 binding of the Worker, e.g. BACKUPS (wrangler.toml [[r2_buckets]] binding)",
  ),
  S3_ENDPOINT: httpUrl("an S3-compatible endpoint, e.g. http://127.0.0.1:9000"),
  S3_REGION: withDefault("us-east-1")
    .pipe(z.string().regex(/^[a-z0-9-]{1,32}$/, "must be a region name such as us-east-1 or auto")),
  S3_BUCKET: optional().refine(
    (v) => v === undefined || BUCKET_PATTERN.test(v),
    "must be a bucket name (3-63 lowercase letters, digits, '.', '-', '_')",
  ),
  // Empty counts as unset (the default); there is no way to ask for "no prefix" on purpose.
  S3_PREFIX: withDefault("backups/")
    .transform((v) => (v.endsWith("/") ? v : `${v}/`))
    .refine(
      (v) => /^[A-Za-z0-9!_.*'()/-]+$/.test(v) && !v.startsWith("/") && !v.split("/").some((s) => s === "." || s === "..") && !v.includes("//"),
      "must be a relative key prefix such as backups/ (letters, digits, !_.*'()-, '/' between segments, no '..')",
    ),
  S3_ACCESS_KEY_ID: optional(),
  S3_SECRET_ACCESS_KEY: optional(),
  S3_FORCE_PATH_STYLE: bool(undefined),
  MAX_COUNT: integer(1, 100_000, 7),
  KEEP_DAILY: integer(0, 10_000, 0),
  KEEP_WEEKLY: integer(0, 10_000, 0),
  KEEP_MONTHLY: integer(0, 10_000, 0),
  API_KEY: optional().refine((v) => v === undefined || v.length >= 16, "must be at least 16 characters when set"),
  LINK_TTL_SECONDS: integer(1, LINK_TTL_MAX_SECONDS, 900),
  GZIP_LEVEL: integer(1, 9, 6),
  CHECK: oneOf(["auto", "none", "structure", "quick", "full"], "auto"),
  SCHEDULE: withDefault("0 3 * * *")
    .refine((v) => {
      const fields = v.split(/\s+/);
      return (fields.length === 5 || fields.length === 6) && fields.every((f) => CRON_FIELD.test(f));
    }, "must be a cron expression with 5 or 6 fields, e.g. '0 3 * * *'"),
  VERIFY: oneOf(["head", "full"], "head"),
  MAX_BYTES: optional(),
  PORT: integer(1, 65_535, 8787),
  HOST: withDefault("127.0.0.1"),
  READ_ATTEMPTS: integer(1, 100, 5),
  S3_MAX_ATTEMPTS: integer(1, 20, 4),
  S3_TIMEOUT_SECONDS: integer(1, 3600, 60),
  NOTIFY_URL: httpUrl("the alert receiver, e.g. https://hc-ping.com/<uuid>"),
  // No fixed default: it depends on NOTIFY_FORMAT (a healthchecks.io check needs every run).
  NOTIFY_ON: optional()
    .transform((v) => v?.toLowerCase())
    .pipe(z.enum(["failure", "always"], { error: "must be one of failure, always" }).optional()),
  NOTIFY_FORMAT: oneOf(["json", "healthchecks"], "json"),
  LOCK: oneOf(["auto", "conditional", "best-effort", "off"], "auto"),
  LOCK_TTL_SECONDS: integer(1, 86_400, 300),
  SKIP_UNCHANGED: bool(false),
  CORS_ORIGINS: optional()
    .transform((v) => (v === undefined ? [] : v.split(/[\s,]+/).filter(Boolean)))
    .refine((list) => list.every((o) => o === "*" || isOrigin(o)), "must be * or a comma-separated list of origins such as https://admin.example.com (scheme, host and optional port; no path)"),
  // Checked in parseConfig by parseRecipients, which names bad entries without echoing them.
  AGE_RECIPIENTS: optional(),
  AGE_IDENTITY: optional().refine((v) => v === undefined || isIdentity(v), `must be ${IDENTITY_EXPECTED}`),
  AGE_IDENTITY_FILE: optional(),
  LINK_MODE: optional()
    .transform((v) => v?.toLowerCase())
    .pipe(z.enum(["presigned", "worker"], { error: "must be one of presigned, worker" }).optional()),
  LINK_SECRET: optional().refine(
    (v) => v === undefined || v.length >= LINK_SECRET_MIN_LENGTH,
    `must be at least ${LINK_SECRET_MIN_LENGTH} characters (e.g. the output of \`openssl rand -hex 32\`)`,
  ),
  LINK_BASE_URL: httpUrl("this server as clients reach it, e.g. https://backups.example.com")
    .refine((v) => v === undefined || (!v.includes("?") && !v.includes("#")), "must not have a query or fragment")
    .transform((v) => v?.replace(/\/+$/, "")),
  CLOUDFLARE_API_TOKEN: optional(),
  CLOUDFLARE_API_BASE_URL: httpUrl("the Cloudflare API, e.g. https://api.cloudflare.com/client/v4"),
};
// Compile-time check: the schema covers exactly the contract's variables.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
export const SCHEMA_COVERS_CONTRACT: Same<keyof typeof fields, ConfigVariable> = true;
type Fields = { [K in keyof typeof fields]: z.output<(typeof fields)[K]> };

function isOrigin(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === "http:" || u.protocol === "https:") && u.origin === value.replace(/\/$/, "");
  } catch {
    return false;
  }
}

export function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

/** Parse the environment. Throws one BackupError (CONFIG_INVALID) listing every problem. */
export function parseConfig(env: Env, defaults: RuntimeDefaults): Config {
  const problems: string[] = [];
  const parsed: Partial<Record<keyof Fields, unknown>> = {};
  for (const [variable, schema] of Object.entries(fields) as [keyof Fields, z.ZodType][]) {
    const r = schema.safeParse(env[variable]);
    if (r.success) parsed[variable] = r.data;
    else for (const issue of r.error.issues) problems.push(describe(variable, issue.message, env[variable]));
  }
  const v = parsed as Partial<Fields>;
  const maxBytes = parseMaxBytes(env.MAX_BYTES, defaults.maxBytes, problems);

  let source: SourceSpec | undefined;
  let databases: Database[] | undefined;
  if (v.BACKUP_SOURCES !== undefined) {
    if (env.BACKUP_SOURCE?.trim() || env.BACKUP_SOURCE_HEADERS?.trim() || env.BACKUP_NAME?.trim()) {
      problems.push("BACKUP_SOURCES is set together with BACKUP_SOURCE, BACKUP_SOURCE_HEADERS or BACKUP_NAME: use one way (put every database in BACKUP_SOURCES)");
    }
    databases = parseSources(v.BACKUP_SOURCES, v.MAX_COUNT ?? 7, problems);
    source = databases?.[0]?.source;
  } else if (v.BACKUP_SOURCE === undefined) {
    problems.push("BACKUP_SOURCE is required: a file path, file:///abs/path.db, http(s):// URL, s3://bucket/key or d1://ACCOUNT_ID/DATABASE_ID (or BACKUP_SOURCES for several databases)");
  } else if (v.BACKUP_SOURCE_HEADERS !== undefined) {
    // (invalid headers are already reported above)
    source = parseSource(v.BACKUP_SOURCE, v.BACKUP_SOURCE_HEADERS, problems);
  }
  if (env.S3_ENDPOINT?.trim() && (!v.S3_ACCESS_KEY_ID || !v.S3_SECRET_ACCESS_KEY)) {
    problems.push("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are required when S3_ENDPOINT is set");
  } else if (Boolean(v.S3_ACCESS_KEY_ID) !== Boolean(v.S3_SECRET_ACCESS_KEY)) {
    problems.push("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together (or both unset to use the AWS default credential chain)");
  }
  if (v.R2_BUCKET !== undefined && !defaults.bindings) {
    problems.push("R2_BUCKET names an R2 binding, which exists only in a Cloudflare Worker: here use the S3 API (S3_BUCKET, S3_ENDPOINT=https://<account id>.r2.cloudflarestorage.com, S3_REGION=auto and an R2 API token's keys)");
  } else if (v.R2_BUCKET !== undefined) {
    // The binding is the bucket: S3_* settings for the store would be ignored, so say so.
    if (env.S3_BUCKET?.trim()) problems.push("R2_BUCKET and S3_BUCKET are both set: the store is one bucket (R2_BUCKET for a Worker's R2 binding, S3_BUCKET for the S3 API); unset one");
  } else if (!env.R2_BUCKET?.trim() && !env.S3_BUCKET?.trim()) {
    problems.push("S3_BUCKET is required (the bucket that receives the backups), or R2_BUCKET in a Worker with an R2 binding");
  }
  const name = databases ? databases[0]?.name : (v.BACKUP_NAME ?? (source ? deriveName(source) : undefined));
  if (!databases && source && name === undefined && !env.BACKUP_NAME?.trim()) {
    problems.push("BACKUP_NAME is required: no valid name could be derived from BACKUP_SOURCE (use lowercase letters, digits, '.', '_', '-')");
  }
  const ageRecipients = v.AGE_RECIPIENTS === undefined ? undefined : parseRecipients(v.AGE_RECIPIENTS);
  for (const p of ageRecipients?.problems ?? []) problems.push(`AGE_RECIPIENTS ${p}`);
  if (v.AGE_IDENTITY !== undefined && v.AGE_IDENTITY_FILE !== undefined) {
    problems.push("AGE_IDENTITY and AGE_IDENTITY_FILE are both set: set one of them");
  }
  if (v.LINK_MODE === "worker" && v.LINK_SECRET === undefined && !env.LINK_SECRET?.trim()) {
    problems.push(`LINK_SECRET is required with LINK_MODE=worker: it signs the /download links (at least ${LINK_SECRET_MIN_LENGTH} random characters, e.g. \`openssl rand -hex 32\`; not the API_KEY)`);
  }
  if (v.LINK_SECRET !== undefined && v.API_KEY !== undefined && v.LINK_SECRET === v.API_KEY) {
    problems.push("LINK_SECRET must differ from API_KEY: a link's signature must not depend on the key that grants the whole API");
  }
  if (!defaults.bindings && [...(databases ?? []).map((d) => d.source), ...(source ? [source] : [])].some((s) => s.kind === "r2")) {
    problems.push(`${databases ? "BACKUP_SOURCES" : "BACKUP_SOURCE"} has an r2:// source, which only a Cloudflare Worker with that R2 binding can read: here use s3://bucket/key with R2's S3 API endpoint (S3_ENDPOINT)`);
  }
  const usesD1 = (databases?.map((d) => d.source) ?? (source ? [source] : [])).some((s) => s.kind === "d1");
  if (usesD1 && !v.CLOUDFLARE_API_TOKEN) {
    problems.push("CLOUDFLARE_API_TOKEN is required for a d1:// source: an API token with the account's D1 permission (a secret: wrangler secret put CLOUDFLARE_API_TOKEN)");
  }
  if (problems.length > 0 || !source || !name) throw configError(problems);
  const c = v as Fields;

  return {
    source,
    name,
    databases: databases ?? [{ name, source, maxCount: c.MAX_COUNT }],
    s3: {
      ...(c.S3_ENDPOINT ? { endpoint: c.S3_ENDPOINT } : {}),
      region: c.S3_REGION,
      bucket: c.S3_BUCKET ?? "",
      prefix: c.S3_PREFIX,
      ...(c.S3_ACCESS_KEY_ID ? { accessKeyId: c.S3_ACCESS_KEY_ID } : {}),
      ...(c.S3_SECRET_ACCESS_KEY ? { secretAccessKey: c.S3_SECRET_ACCESS_KEY } : {}),
      forcePathStyle: c.S3_FORCE_PATH_STYLE ?? Boolean(c.S3_ENDPOINT),
      maxAttempts: c.S3_MAX_ATTEMPTS,
      timeoutMs: c.S3_TIMEOUT_SECONDS * 1000,
    },
    ...(c.R2_BUCKET ? { r2Bucket: c.R2_BUCKET } : {}),
    maxCount: databases?.[0]?.maxCount ?? c.MAX_COUNT,
    keep: { daily: c.KEEP_DAILY, weekly: c.KEEP_WEEKLY, monthly: c.KEEP_MONTHLY },
    ...(c.API_KEY ? { apiKey: c.API_KEY } : {}),
    linkTtlSeconds: c.LINK_TTL_SECONDS,
    ...(c.LINK_MODE ? { linkMode: c.LINK_MODE } : {}),
    ...(c.LINK_SECRET ? { linkSecret: c.LINK_SECRET } : {}),
    ...(c.LINK_BASE_URL ? { linkBaseUrl: c.LINK_BASE_URL } : {}),
    gzipLevel: c.GZIP_LEVEL,
    check: c.CHECK,
    verify: c.VERIFY,
    schedule: c.SCHEDULE,
    maxBytes,
    readAttempts: c.READ_ATTEMPTS,
    lock: { mode: c.LOCK, ttlMs: c.LOCK_TTL_SECONDS * 1000 },
    skipUnchanged: c.SKIP_UNCHANGED ?? false,
    corsOrigins: c.CORS_ORIGINS,
    ...(c.NOTIFY_URL
      ? { notify: { url: c.NOTIFY_URL, format: c.NOTIFY_FORMAT, on: c.NOTIFY_ON ?? (c.NOTIFY_FORMAT === "healthchecks" ? "always" : "failure") } }
      : {}),
    ...(ageRecipients ? { ageRecipients: ageRecipients.recipients } : {}),
    ...(c.AGE_IDENTITY ? { ageIdentity: c.AGE_IDENTITY } : {}),
    ...(c.AGE_IDENTITY_FILE ? { ageIdentityFile: c.AGE_IDENTITY_FILE } : {}),
    ...(c.CLOUDFLARE_API_TOKEN || c.CLOUDFLARE_API_BASE_URL
      ? { cloudflare: { ...(c.CLOUDFLARE_API_TOKEN ? { apiToken: c.CLOUDFLARE_API_TOKEN } : {}), ...(c.CLOUDFLARE_API_BASE_URL ? { apiBase: c.CLOUDFLARE_API_BASE_URL } : {}) } }
      : {}),
    port: c.PORT,
    host: c.HOST,
  };
}

const MAX_DATABASES = 100;

/** BACKUP_SOURCES: a JSON list of {name?, source, headers?, maxCount?}; every problem is named by its index. */
function parseSources(raw: string, defaultMaxCount: number, problems: string[]): Database[] | undefined {
  const where = (i: number, field: string) => `BACKUP_SOURCES[${i}].${field}`;
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    problems.push('BACKUP_SOURCES must be a JSON list such as [{"name":"app","source":"/data/app.db"},{"name":"jobs","source":"https://…","headers":{"Authorization":"…"},"maxCount":30}]');
    return undefined;
  }
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_DATABASES) {
    problems.push(`BACKUP_SOURCES must be a JSON list of 1 to ${MAX_DATABASES} objects {name, source, headers?, maxCount?}`);
    return undefined;
  }
  const out: Database[] = [];
  const seen = new Set<string>();
  list.forEach((entry: unknown, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      problems.push(`BACKUP_SOURCES[${i}] must be an object {name, source, headers?, maxCount?}`);
      return;
    }
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (!["name", "source", "headers", "maxCount"].includes(k)) problems.push(`BACKUP_SOURCES[${i}] has an unknown field ${JSON.stringify(k.slice(0, 40))} (allowed: name, source, headers, maxCount)`);
    }
    const headers = e.headers === undefined ? {} : HEADERS.safeParse(e.headers).data;
    if (!headers) problems.push(`${where(i, "headers")} must be an object of string header values`);
    if (typeof e.source !== "string" || e.source.trim() === "") {
      problems.push(`${where(i, "source")} is required: a file path, file:///abs/path.db, http(s):// URL or s3://bucket/key`);
      return;
    }
    // Source problems are reported under the entry's own index (parseSource names BACKUP_SOURCE).
    const local: string[] = [];
    const source = parseSource(e.source.trim(), headers ?? {}, local);
    for (const p of local) problems.push(p.replace(/^BACKUP_SOURCE\b/, where(i, "source")).replace(/ \(got .*\)$/, ""));
    let name: string | undefined;
    if (e.name === undefined) {
      name = source ? deriveName(source) : undefined;
      if (source && name === undefined) problems.push(`${where(i, "name")} is required: no valid name could be derived from its source`);
    } else if (typeof e.name === "string" && NAME_PATTERN.test(e.name)) {
      name = e.name;
    } else {
      problems.push(`${where(i, "name")} must match ${NAME_PATTERN.source} (lowercase letters, digits, '.', '_', '-'; at most 63 characters)`);
    }
    let maxCount = defaultMaxCount;
    if (e.maxCount !== undefined) {
      if (typeof e.maxCount === "number" && Number.isInteger(e.maxCount) && e.maxCount >= 1 && e.maxCount <= 100_000) maxCount = e.maxCount;
      else problems.push(`${where(i, "maxCount")} must be a whole number between 1 and 100000`);
    }
    if (name !== undefined && seen.has(name)) problems.push(`${where(i, "name")} ${JSON.stringify(name)} is used twice: every database needs its own name (its keys, lease and retention are per name)`);
    if (name !== undefined) seen.add(name);
    if (source && name !== undefined) out.push({ name, source, maxCount });
  });
  return out.length === list.length ? out : undefined;
}

/** The configuration of one database: the shared settings with its name, source and MAX_COUNT. */
export function configFor(config: Config, database: Database): Config {
  return { ...config, name: database.name, source: database.source, maxCount: database.maxCount, databases: [database] };
}

function parseMaxBytes(raw: string | undefined, fallback: number, problems: string[]): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 512 || n > MAX_BYTES_CEILING) {
    problems.push(describe("MAX_BYTES", `must be a whole number of bytes between 512 and ${MAX_BYTES_CEILING}`, raw));
    return fallback;
  }
  return n;
}

/** Account IDs are 32 hex digits and database IDs UUIDs; anything that could change the API path is refused. */
const D1_ID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

function parseSource(raw: string, headers: Record<string, string>, problems: string[]): SourceSpec | undefined {
  if (/^d1:\/\//i.test(raw)) {
    const m = /^d1:\/\/([^/]+)\/([^/]+)$/i.exec(raw);
    if (!m || !D1_ID.test(m[1]!) || !D1_ID.test(m[2]!)) {
      problems.push(describe("BACKUP_SOURCE", "must look like d1://ACCOUNT_ID/DATABASE_ID (the account ID and the database's UUID)", raw));
      return undefined;
    }
    return { kind: "d1", accountId: m[1]!, databaseId: m[2]! };
  }
  if (/^s3:\/\//i.test(raw)) {
    const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(raw);
    if (!m || !BUCKET_PATTERN.test(m[1]!)) {
      problems.push(describe("BACKUP_SOURCE", "must look like s3://bucket/path/to/db.sqlite", raw));
      return undefined;
    }
    return { kind: "s3", bucket: m[1]!, key: m[2]! };
  }
  if (/^r2:\/\//i.test(raw)) {
    const m = /^r2:\/\/([^/]+)\/(.+)$/.exec(raw);
    if (!m || !BINDING_PATTERN.test(m[1]!)) {
      problems.push(describe("BACKUP_SOURCE", "must look like r2://BINDING/path/to/db.sqlite (BINDING: the Worker's R2 binding name)", raw));
      return undefined;
    }
    return { kind: "r2", binding: m[1]!, key: m[2]! };
  }
  if (/^https?:\/\//i.test(raw)) {
    if (!isHttpUrl(raw)) {
      problems.push(describe("BACKUP_SOURCE", "is not a valid http(s) URL", raw));
      return undefined;
    }
    return { kind: "url", url: raw, headers };
  }
  if (/^file:/i.test(raw)) {
    try {
      const u = new URL(raw);
      if (u.host !== "" && u.host !== "localhost") throw new Error("remote host");
      return { kind: "file", path: decodeURIComponent(u.pathname) };
    } catch {
      problems.push(describe("BACKUP_SOURCE", "must be a local file URL such as file:///var/lib/app/app.db", raw));
      return undefined;
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    problems.push(describe("BACKUP_SOURCE", "has an unsupported scheme (use a path, file:, http(s)://, s3://, d1:// or, in a Worker, r2://)", raw));
    return undefined;
  }
  return { kind: "file", path: raw };
}

/** `/data/My App.sqlite3` → `my-app`: the base name without extension, made key-safe. */
export function deriveName(source: SourceSpec): string | undefined {
  const raw =
    source.kind === "file" ? source.path : source.kind === "s3" || source.kind === "r2" ? source.key : source.kind === "d1" ? `d1-${source.databaseId}` : safeDecode(new URL(source.url).pathname);
  const base = raw.split(/[\\/]/).filter(Boolean).pop() ?? "";
  const stem = base.includes(".") ? base.slice(0, base.lastIndexOf(".")) : base;
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 63);
  return NAME_PATTERN.test(name) ? name : undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function describe(variable: string, message: string, value: string | undefined): string {
  const secret = (SECRET_VARIABLES as readonly string[]).includes(variable);
  // URLs may carry credentials even when they are invalid: never echo userinfo or queries.
  const safe = value?.replace(/\/\/[^/@\s]*@/g, "//[redacted]@").replace(/\?.*$/s, "?[redacted]");
  const shown = safe === undefined || safe.trim() === "" || secret ? "" : ` (got ${JSON.stringify(safe.length > 80 ? `${safe.slice(0, 80)}…` : safe)})`;
  return `${variable} ${message}${shown}`;
}

function configError(problems: string[]): BackupError {
  const list = problems.length > 0 ? problems : ["unknown configuration problem"];
  return new BackupError("CONFIG_INVALID", `Invalid configuration: ${list.join("; ")}`, 500);
}

/** The configuration as it may be logged: every secret replaced by a marker. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const { source, s3, apiKey, notify, ageIdentity, linkSecret, databases, cloudflare, ...rest } = config;
  const redactSource = (s: SourceSpec) => (s.kind === "url" ? { kind: "url", url: redactUrl(s.url), headers: Object.keys(s.headers) } : s);
  return {
    ...rest,
    databases: databases.map((d) => ({ ...d, source: redactSource(d.source) })),
    ...(notify ? { notify: { ...notify, url: describeNotifyUrl(notify.url) } } : {}),
    source: redactSource(source),
    s3: { ...s3, secretAccessKey: s3.secretAccessKey ? "[redacted]" : undefined },
    apiKey: apiKey ? "[redacted]" : undefined,
    ageIdentity: ageIdentity ? "[redacted]" : undefined,
    linkSecret: linkSecret ? "[redacted]" : undefined,
    ...(cloudflare ? { cloudflare: { ...cloudflare, apiToken: cloudflare.apiToken ? "[redacted]" : undefined } } : {}),
  };
}

/** Query strings and userinfo of URLs often carry tokens. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) u.username = u.password = "";
    if (u.search) u.search = "?[redacted]";
    return u.toString();
  } catch {
    return "[invalid url]";
  }
}

/** The secret values of a config, for log redaction. */
export function secretsOf(config: Config): string[] {
  const values = [config.s3.secretAccessKey, config.apiKey, config.ageIdentity, config.linkSecret, config.cloudflare?.apiToken];
  // `config.source` is databases[0]'s (or, from configFor, the one database's).
  for (const { source } of config.databases) {
    if (source.kind !== "url") continue;
    values.push(...Object.values(source.headers));
    const u = new URL(source.url);
    values.push(u.password, ...[...u.searchParams.values()]);
  }
  if (config.notify) values.push(...notifyUrlSecrets(config.notify.url));
  return values.filter((v): v is string => typeof v === "string" && v.length >= 4);
}
