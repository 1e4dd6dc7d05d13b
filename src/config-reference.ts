/**
 * The configuration reference: for every variable of the contract (CONFIG_VARIABLES in
 * config.ts) what it does, its default, what it accepts, where it applies and whether it is a
 * secret. Pure data, so that docs/configuration.md is generated from it (scripts/gen-docs.ts,
 * `npm run docs`) and test/docs.test.ts can hold it against the parser: an entry per variable,
 * the secret flags equal to SECRET_VARIABLES, and every `defaultValue` a no-op when set.
 * Texts are Markdown; links are relative to docs/.
 */
import type { ConfigVariable } from "./config.js";

export type ReferenceRuntime = "node" | "workers";

export const REFERENCE_GROUPS = [
  "Source",
  "Bucket",
  "Retention",
  "Backup",
  "Schedule and instances",
  "HTTP API",
  "Alerts",
  "Encryption",
] as const;
export type ReferenceGroup = (typeof REFERENCE_GROUPS)[number];

export interface VariableReference {
  group: ReferenceGroup;
  /** What it does, in a sentence or a few. */
  summary: string;
  /** The default, as a reader needs it (may depend on the runtime or another variable). */
  default: string;
  /**
   * The default as a value parseConfig accepts, when it is one fixed value: setting the
   * variable to it must give the same configuration as leaving it unset (tested).
   */
  defaultValue?: string;
  /** Accepted values. */
  accepts: string;
  /** Where it takes effect. */
  runtimes: readonly ReferenceRuntime[];
  /** Never echoed in messages; redacted from every log line. */
  secret: boolean;
  /** The docs page that explains it, relative to docs/ (with an anchor if useful). */
  see?: string;
}

const BOTH = ["node", "workers"] as const;
const NODE = ["node"] as const;
const WORKERS = ["workers"] as const;

export const CONFIG_REFERENCE: Readonly<Record<ConfigVariable, VariableReference>> = {
  BACKUP_SOURCE: {
    group: "Source",
    summary:
      "The database to back up. A file is read with its committed WAL frames applied; a URL or S3 object is streamed. Required unless `BACKUP_SOURCES` is set.",
    default: "required (`npm start`: the bundled sample database)",
    accepts: "a path or `file:///abs/path.db` (Node only), an `http(s)://` URL, `s3://bucket/key` (read with the same endpoint and credentials as the backups), `r2://BINDING/key` (Workers only: an object in the R2 bucket bound as `BINDING`; [r2.md](r2.md)), or `d1://ACCOUNT_ID/DATABASE_ID` (a Cloudflare D1 database, with `CLOUDFLARE_API_TOKEN`; [d1.md](d1.md))",
    runtimes: BOTH,
    secret: false,
    see: "sources.md",
  },
  BACKUP_SOURCE_HEADERS: {
    group: "Source",
    summary:
      "Request headers for a URL source, e.g. a token. Sent only to the source's origin, never after a redirect to another host.",
    default: "none",
    accepts: 'a JSON object of string values, e.g. `{"Authorization":"Bearer …"}`',
    runtimes: BOTH,
    secret: true,
    see: "sources.md",
  },
  BACKUP_NAME: {
    group: "Source",
    summary: "The logical name used in keys (`{S3_PREFIX}{name}/{name}-….sqlite.gz`), leases, status and metrics.",
    default: "the source's base name without extension, lowercased and made key-safe (`My App.sqlite3` → `my-app`)",
    accepts: "`[a-z0-9][a-z0-9._-]{0,62}`",
    runtimes: BOTH,
    secret: false,
    see: "objects.md",
  },
  BACKUP_SOURCES: {
    group: "Source",
    summary:
      "Several databases instead of `BACKUP_SOURCE`/`BACKUP_NAME`/`BACKUP_SOURCE_HEADERS` (not together with them). Each entry has its own keys, retention, lease, status and metrics; every other setting is shared. A secret, since entries may carry headers.",
    default: "unset",
    accepts:
      'a JSON list of 1 to 100 objects `{"name"?, "source", "headers"?, "maxCount"?}`; names unique (derived from the source when left out), `maxCount` 1…100000 (default `MAX_COUNT`). In a `--config` file: the list `databases`',
    runtimes: BOTH,
    secret: true,
    see: "sources.md#several-databases",
  },
  R2_BUCKET: {
    group: "Bucket",
    summary:
      "The name of the Worker's R2 binding (`[[r2_buckets]]` in wrangler.toml) that receives the backups, in place of every `S3_*` setting but `S3_PREFIX`: no endpoint, no keys. Links need `LINK_MODE=worker` (a binding cannot presign).",
    default: "unset (the S3 API with `S3_*`)",
    accepts: "a binding name such as `BACKUPS` (a JavaScript identifier); not together with `S3_BUCKET`",
    runtimes: WORKERS,
    secret: false,
    see: "r2.md",
  },
  S3_ENDPOINT: {
    group: "Bucket",
    summary: "The S3-compatible endpoint (MinIO, R2, Swift, …). Unset means AWS S3.",
    default: "unset (AWS)",
    accepts: "an `http(s)://` URL, e.g. `http://127.0.0.1:9000` or `https://<account-id>.r2.cloudflarestorage.com`",
    runtimes: BOTH,
    secret: false,
    see: "storage.md",
  },
  S3_REGION: {
    group: "Bucket",
    summary: "The bucket's region; `auto` for R2. It must match the server's (SigV4 signs it).",
    default: "`us-east-1`",
    defaultValue: "us-east-1",
    accepts: "a region name, `[a-z0-9-]{1,32}`",
    runtimes: BOTH,
    secret: false,
  },
  S3_BUCKET: {
    group: "Bucket",
    summary: "The bucket that receives the backups.",
    default: "required unless `R2_BUCKET` is set (`npm start`: the embedded server's bucket)",
    accepts: "a bucket name: 3–63 lowercase letters, digits, `.`, `-`, `_`",
    runtimes: BOTH,
    secret: false,
  },
  S3_PREFIX: {
    group: "Bucket",
    summary: "The key prefix every object of this tool is written under; a `/` is appended if missing. Empty means the default.",
    default: "`backups/`",
    defaultValue: "backups/",
    accepts: "a relative prefix: letters, digits, `!_.*'()-`, `/` between segments, no `..`",
    runtimes: BOTH,
    secret: false,
    see: "objects.md",
  },
  S3_ACCESS_KEY_ID: {
    group: "Bucket",
    summary:
      "The access key id. Required with `S3_ENDPOINT`; on AWS both keys may be left unset to use the default credential chain (instance role, `AWS_PROFILE`).",
    default: "required with `S3_ENDPOINT`",
    accepts: "a string; set together with `S3_SECRET_ACCESS_KEY`",
    runtimes: BOTH,
    secret: false,
    see: "storage.md",
  },
  S3_SECRET_ACCESS_KEY: {
    group: "Bucket",
    summary: "The secret access key that goes with `S3_ACCESS_KEY_ID`. On Workers: `npx wrangler secret put S3_SECRET_ACCESS_KEY`.",
    default: "required with `S3_ENDPOINT`",
    accepts: "a string; set together with `S3_ACCESS_KEY_ID`",
    runtimes: BOTH,
    secret: true,
  },
  S3_FORCE_PATH_STYLE: {
    group: "Bucket",
    summary: "Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted ones (`bucket.endpoint/key`).",
    default: "`true` when `S3_ENDPOINT` is set, else `false`",
    accepts: "`true`, `false`, `1`, `0`",
    runtimes: BOTH,
    secret: false,
  },
  S3_MAX_ATTEMPTS: {
    group: "Bucket",
    summary:
      "Tries per S3 request, the first included, for transient failures: 5xx, `SlowDown`, reset connections, timeouts. 403, 404 and signature errors are never retried.",
    default: "`4`",
    defaultValue: "4",
    accepts: "1…20",
    runtimes: BOTH,
    secret: false,
    see: "operations.md#failure-safety",
  },
  S3_TIMEOUT_SECONDS: {
    group: "Bucket",
    summary: "An S3 request without its response this long (on Node also: with an idle socket) fails and is retried.",
    default: "`60`",
    defaultValue: "60",
    accepts: "1…3600",
    runtimes: BOTH,
    secret: false,
    see: "operations.md#failure-safety",
  },
  MAX_COUNT: {
    group: "Retention",
    summary:
      "Keep the newest N backups of this name. Alone, it caps the total (the new backup plus the newest N − 1 others); with a `KEEP_*` rule set, it is one rule among them rather than a cap.",
    default: "`7`",
    defaultValue: "7",
    accepts: "1…100000",
    runtimes: BOTH,
    secret: false,
    see: "retention.md",
  },
  KEEP_DAILY: {
    group: "Retention",
    summary: "Also keep the newest backup of each of the N most recent UTC days that have one (days without a backup do not count).",
    default: "`0` (off)",
    defaultValue: "0",
    accepts: "0…10000",
    runtimes: BOTH,
    secret: false,
    see: "retention.md",
  },
  KEEP_WEEKLY: {
    group: "Retention",
    summary: "The same per ISO week (Monday 00:00 UTC to Sunday).",
    default: "`0` (off)",
    defaultValue: "0",
    accepts: "0…10000",
    runtimes: BOTH,
    secret: false,
    see: "retention.md",
  },
  KEEP_MONTHLY: {
    group: "Retention",
    summary: "The same per UTC calendar month.",
    default: "`0` (off)",
    defaultValue: "0",
    accepts: "0…10000",
    runtimes: BOTH,
    secret: false,
    see: "retention.md",
  },
  SKIP_UNCHANGED: {
    group: "Retention",
    summary:
      'When the image equals the newest backup (same sha256 and format), upload nothing and prune nothing; the manifest says `"unchanged": true`.',
    default: "`false`",
    defaultValue: "false",
    accepts: "`true`, `false`, `1`, `0`",
    runtimes: BOTH,
    secret: false,
    see: "retention.md#skipping-unchanged-databases",
  },
  GZIP_LEVEL: {
    group: "Backup",
    summary: "The gzip level. Workers' `CompressionStream` has a fixed level, so this applies on Node only.",
    default: "`6`",
    defaultValue: "6",
    accepts: "1…9",
    runtimes: NODE,
    secret: false,
    see: "performance.md",
  },
  CHECK: {
    group: "Backup",
    summary:
      "How the image is proved before its upload completes (the header is always validated first). `auto` is `quick` where the size is known up front and fits memory (64 MiB on Node, 16 MiB on Workers), else `structure`.",
    default: "`auto`",
    defaultValue: "auto",
    accepts:
      "`auto`, `structure` (streamed b-tree checks in TypeScript), `quick` (`PRAGMA quick_check`), `full` (`PRAGMA integrity_check`), `none`",
    runtimes: BOTH,
    secret: false,
    see: "checks.md",
  },
  VERIFY: {
    group: "Backup",
    summary:
      "How the stored object is verified after the upload: `head` checks its size and metadata; `full` reads it back, decrypts, gunzips, compares sha256 and size, and runs the structural check as it streams, never holding the image.",
    default: "`head`",
    defaultValue: "head",
    accepts: "`head`, `full`",
    runtimes: BOTH,
    secret: false,
    see: "restore.md",
  },
  MAX_BYTES: {
    group: "Backup",
    summary:
      "The largest source accepted, in bytes (checked against `Content-Length` before downloading, and while streaming). `CHECK=quick` and `full` hold the image, so they refuse more than 4294967295 bytes whatever this says.",
    default: "Node 1 TiB; Workers 4 GiB (what 5 minutes of CPU stream)",
    accepts: "512…2^50",
    runtimes: BOTH,
    secret: false,
    see: "workers.md#limits",
  },
  READ_ATTEMPTS: {
    group: "Backup",
    summary: "Reads of a source that a writer keeps changing under the read before giving up with `SOURCE_CHANGED` (or `HOT_JOURNAL`).",
    default: "`5`",
    defaultValue: "5",
    accepts: "1…100",
    runtimes: BOTH,
    secret: false,
    see: "sources.md#live-databases-wal-and-torn-reads",
  },
  SCHEDULE: {
    group: "Schedule and instances",
    summary: "When the Node server (`serve`, `npm start`) backs up. On Workers the cron is `[triggers] crons` in `wrangler.toml`.",
    default: "`0 3 * * *`",
    defaultValue: "0 3 * * *",
    accepts: "a cron expression (UTC) with 5 or 6 fields",
    runtimes: NODE,
    secret: false,
    see: "operations.md#several-instances-schedules-and-restarts",
  },
  LOCK: {
    group: "Schedule and instances",
    summary:
      "The cross-instance lease: `auto` probes the store for conditional writes, `conditional` requires them (`LOCK_UNSUPPORTED` otherwise), `best-effort` writes, waits 1 s and reads back, `off` takes no lease (one instance only).",
    default: "`auto`",
    defaultValue: "auto",
    accepts: "`auto`, `conditional`, `best-effort`, `off`",
    runtimes: BOTH,
    secret: false,
    see: "operations.md#several-instances-schedules-and-restarts",
  },
  LOCK_TTL_SECONDS: {
    group: "Schedule and instances",
    summary: "A lease not renewed for this long expires, e.g. after its holder was killed. Renewed every third of it while a backup runs.",
    default: "`300`",
    defaultValue: "300",
    accepts: "1…86400",
    runtimes: BOTH,
    secret: false,
    see: "operations.md#several-instances-schedules-and-restarts",
  },
  API_KEY: {
    group: "HTTP API",
    summary:
      "The secret for the HTTP API, sent as `Authorization: Bearer …` or `X-API-Key: …`. Unset: every protected route answers 403 (the API is off until you choose a key).",
    default: "unset (API disabled)",
    accepts: "at least 16 characters",
    runtimes: BOTH,
    secret: true,
    see: "http-api.md",
  },
  LINK_TTL_SECONDS: {
    group: "HTTP API",
    summary: "The lifetime of signed download links, presigned or `/download` (API, `link` command, library).",
    default: "`900`",
    defaultValue: "900",
    accepts: "1…604800 (7 days, the SigV4 maximum)",
    runtimes: BOTH,
    secret: false,
  },
  LINK_MODE: {
    group: "HTTP API",
    summary:
      "What a download link is: `presigned`, a URL the store signed (the bytes go straight from the bucket); `worker`, a URL of this server, `/download/{file}?name=…&expires=…&sig=…`, that streams the object (for stores that cannot presign, or one address for every download).",
    default: "the store's: `presigned` for the S3 store, `worker` for a store that cannot sign URLs",
    accepts: "`presigned` | `worker`",
    runtimes: BOTH,
    secret: false,
    see: "worker-links.md",
  },
  LINK_SECRET: {
    group: "HTTP API",
    summary:
      "The key of the HMAC-SHA256 that signs `/download` links; required with `LINK_MODE=worker` (an R2 binding store without it backs up, but has no links). While it is set, `/download` serves links signed with it whatever `LINK_MODE` says. Must differ from `API_KEY`.",
    default: "unset (`/download` answers 403 `DOWNLOADS_DISABLED`)",
    accepts: "at least 32 characters, e.g. `openssl rand -hex 32`",
    runtimes: BOTH,
    secret: true,
    see: "worker-links.md",
  },
  LINK_BASE_URL: {
    group: "HTTP API",
    summary:
      "The public URL `/download` links start with. Unset: the origin of the request that asked for the link (`X-Forwarded-*` are not read). Needed behind a proxy, under a mount path, and for links made by the CLI or the library.",
    default: "unset",
    accepts: "an `http(s)://` URL, optionally with a path, without query or fragment",
    runtimes: BOTH,
    secret: false,
    see: "worker-links.md",
  },
  CORS_ORIGINS: {
    group: "HTTP API",
    summary:
      "Origins allowed to call the API from a browser (compared exactly; `*` allows any). Preflights need no key; real requests still do; credentials are never allowed. Unset: no CORS headers at all.",
    default: "unset",
    accepts: "`*` or a comma-separated list of origins such as `https://admin.example.com` (scheme, host, optional port; no path)",
    runtimes: BOTH,
    secret: false,
    see: "http-api.md#cors",
  },
  PORT: {
    group: "HTTP API",
    summary: "The port of the Node server (`serve`, `npm start`).",
    default: "`8787`",
    defaultValue: "8787",
    accepts: "1…65535",
    runtimes: NODE,
    secret: false,
  },
  HOST: {
    group: "HTTP API",
    summary: "The address the Node server listens on.",
    default: "`127.0.0.1`",
    defaultValue: "127.0.0.1",
    accepts: "a host name or IP address",
    runtimes: NODE,
    secret: false,
  },
  NOTIFY_URL: {
    group: "Alerts",
    summary:
      "Receives a JSON `POST` after a run (failed runs, or every run with `NOTIFY_ON=always`). A secret: such URLs usually carry a token; logs show only its origin.",
    default: "unset (no alerts)",
    accepts: "an `http(s)://` URL, e.g. `https://hc-ping.com/<uuid>`",
    runtimes: BOTH,
    secret: true,
    see: "operations.md#alerts",
  },
  NOTIFY_ON: {
    group: "Alerts",
    summary: "Which runs are sent: `failure` (failed runs, and successes whose pruning failed) or `always` (every run: a heartbeat).",
    default: "`failure`; `always` with `NOTIFY_FORMAT=healthchecks`",
    accepts: "`failure`, `always`",
    runtimes: BOTH,
    secret: false,
    see: "operations.md#alerts",
  },
  NOTIFY_FORMAT: {
    group: "Alerts",
    summary: "`json` POSTs to `NOTIFY_URL`; `healthchecks` sends the same body, a failed run to `NOTIFY_URL/fail`.",
    default: "`json`",
    defaultValue: "json",
    accepts: "`json`, `healthchecks`",
    runtimes: BOTH,
    secret: false,
    see: "operations.md#alerts",
  },
  AGE_RECIPIENTS: {
    group: "Encryption",
    summary:
      "age public keys: every backup is encrypted to all of them before it leaves the process (`….sqlite.gz.age`). Public keys are not secrets (`wrangler.toml` `[vars]` is fine).",
    default: "unset (not encrypted)",
    accepts: "X25519 recipients (`age1…`, as `age-keygen` prints), separated by commas, spaces or newlines",
    runtimes: BOTH,
    secret: false,
    see: "encryption.md",
  },
  AGE_IDENTITY: {
    group: "Encryption",
    summary: "An age secret key that `verify` and `restore` decrypt encrypted backups with. Not together with `AGE_IDENTITY_FILE`.",
    default: "unset",
    accepts: "`AGE-SECRET-KEY-1…`",
    runtimes: NODE,
    secret: true,
    see: "encryption.md",
  },
  AGE_IDENTITY_FILE: {
    group: "Encryption",
    summary: "The path of an age identity file (as `age-keygen -o` writes it; one or more keys), for `verify` and `restore`. Node CLI only; not together with `AGE_IDENTITY`.",
    default: "unset",
    accepts: "a file path",
    runtimes: NODE,
    secret: false,
    see: "encryption.md",
  },
  CLOUDFLARE_API_TOKEN: {
    group: "Source",
    summary: "For `d1://` sources: a Cloudflare API token of the account with its D1 permission, used to export the database through the REST API. Required when any source is `d1://`; sent only to the Cloudflare API.",
    default: "unset",
    accepts: "an API token",
    runtimes: BOTH,
    secret: true,
    see: "d1.md",
  },
  CLOUDFLARE_API_BASE_URL: {
    group: "Source",
    summary: "For `d1://` sources: the Cloudflare API's base URL, for an API proxy or a test server (`CLOUDFLARE_API_TOKEN` is sent there).",
    default: "`https://api.cloudflare.com/client/v4`",
    accepts: "an `http(s)://` URL",
    runtimes: BOTH,
    secret: false,
    see: "d1.md",
  },
};

/** Variables read outside the validated configuration (by the Node process itself). */
export const PROCESS_VARIABLES: Readonly<Record<string, Pick<VariableReference, "summary" | "default" | "accepts" | "runtimes">>> = {
  LOG_LEVEL: {
    summary: "The lowest level of JSON log lines written to stderr by the command and `npm start` (any other value means `info`).",
    default: "`info`",
    accepts: "`debug`, `info`, `warn`, `error`",
    runtimes: NODE,
  },
};
