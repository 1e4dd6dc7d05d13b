/**
 * The HTTP API's routes as data: paths, methods, parameters and response schemas (zod),
 * from which both the request validation and GET /openapi.json are generated. Handlers live
 * in app.ts; nothing here does I/O.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { API_KEY_HEADER } from "./auth.js";

export const BEARER_SCHEME = "bearerAuth";
export const API_KEY_SCHEME = "apiKeyHeader";
/** Either credential is enough (OpenAPI: alternatives are separate requirement objects). */
const PROTECTED: Record<string, string[]>[] = [{ [BEARER_SCHEME]: [] }, { [API_KEY_SCHEME]: [] }];

export const securitySchemes = {
  [BEARER_SCHEME]: { type: "http", scheme: "bearer", description: "Authorization: Bearer <API_KEY>" },
  [API_KEY_SCHEME]: { type: "apiKey", in: "header", name: API_KEY_HEADER, description: `${API_KEY_HEADER}: <API_KEY>` },
} as const;

// ---------------------------------------------------------------------------------- schemas

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "BACKUP_NOT_FOUND" }),
      message: z.string(),
      runningSince: z.string().optional().openapi({ description: "With BACKUP_RUNNING: when the running backup started (ISO 8601)." }),
    }),
  })
  .openapi("Error");

export const ManifestSchema = z
  .object({
    key: z.string().openapi({ example: "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz" }),
    file: z.string().openapi({ example: "app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz" }),
    name: z.string(),
    bytes: z.number().int().openapi({ description: "Size of the uncompressed image." }),
    gzipBytes: z.number().int(),
    encrypted: z.boolean().openapi({ description: "Encrypted with age to AGE_RECIPIENTS: the key ends in .sqlite.gz.age and the object is the gzip's age file." }),
    sha256: z.string().openapi({ description: "Hex sha256 of the uncompressed image." }),
    pageSize: z.number().int(),
    pageCount: z.number().int(),
    sqliteVersion: z.string(),
    readAttempts: z.number().int().openapi({ description: "Reads it took to get a consistent copy of a file source; more than 1 means a writer changed it during a read." }),
    walFrames: z.number().int().openapi({ description: "Committed WAL frames applied onto the main file (WAL-mode file sources)." }),
    d1Bookmark: z.string().optional().openapi({ description: "d1:// sources: the D1 Time Travel bookmark the export was taken at (object metadata d1-bookmark)." }),
    startedAt: z.string(),
    durationMs: z.number(),
    verified: z.enum(["head", "full"]),
    pruned: z.array(z.string()).openapi({ description: "Keys of old backups removed by retention." }),
    pruneError: z.string().optional().openapi({ description: "Set when the backup succeeded but removing old backups did not." }),
    abortedUploads: z.array(z.string()).openapi({ description: "Keys of multipart uploads left by earlier failed runs (older than 3 hours) that this run aborted." }),
    unchanged: z.literal(true).optional().openapi({ description: "SKIP_UNCHANGED: the image equals the newest backup's, so nothing was uploaded or pruned; key, file and gzipBytes are that backup's." }),
  })
  .openapi("Manifest");

export const BackupEntrySchema = z
  .object({
    key: z.string(),
    file: z.string(),
    size: z.number().int().openapi({ description: "Size of the stored object (the gzip, or its age file for a .sqlite.gz.age backup)." }),
    lastModified: z.string(),
    sha256: z.string().optional().openapi({ description: "With ?details=1: hex sha256 of the uncompressed image, from the object's metadata." }),
    bytes: z.number().int().optional().openapi({ description: "With ?details=1: size of the uncompressed image, from the object's metadata." }),
    encrypted: z.boolean().optional().openapi({ description: "With ?details=1: whether the object is an age file." }),
    verified: z
      .enum(["head", "full"])
      .optional()
      .openapi({ description: "With ?details=1, for backups this process or isolate made: how the upload was verified (VERIFY). Every listed backup passed verification when it was made (one that fails is deleted); this says how." }),
  })
  .openapi("BackupEntry");

export const BackupListSchema = z.object({ backups: z.array(BackupEntrySchema) }).openapi("BackupList");

export const DeletedSchema = z
  .object({
    key: z.string().openapi({ example: "backups/app/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz" }),
    file: z.string(),
    name: z.string(),
    size: z.number().int().openapi({ description: "Size of the object that was deleted." }),
    lastModified: z.string(),
    wasNewest: z.boolean().openapi({ description: "It was the newest backup of its name (deleted with ?force=1)." }),
    remaining: z.number().int().openapi({ description: "Backups of this name left in the bucket." }),
  })
  .openapi("DeletedBackup");

export const LinkSchema = z
  .object({
    url: z.string().openapi({
      description: "The download URL: presigned by the store (LINK_MODE=presigned), or this server's GET /download/{file}?name=…&expires=…&sig=… (LINK_MODE=worker).",
    }),
    key: z.string(),
    expiresAt: z.string(),
    size: z.number().int(),
  })
  .openapi("Link");

const LastRunSchema = z
  .object({
    startedAt: z.string(),
    finishedAt: z.string(),
    ok: z.boolean(),
    durationMs: z.number(),
    key: z.string().optional(),
    bytes: z.number().int().optional(),
    gzipBytes: z.number().int().optional(),
    pruned: z.number().int().optional(),
    unchanged: z.boolean().optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  })
  .openapi("LastRun");

const RunRecordSchema = z
  .object({
    startedAt: z.string(),
    finishedAt: z.string(),
    durationMs: z.number(),
    result: z.enum(["ok", "failed", "skipped"]).openapi({ description: "skipped: nothing was tried (the schedule window was covered already, or another instance held the lease)." }),
    trigger: z.enum(["api", "schedule"]).openapi({ description: "api: POST /backups or the CLI; schedule: the cron trigger or the Node start-up catch-up." }),
    key: z.string().optional(),
    bytes: z.number().int().optional(),
    gzipBytes: z.number().int().optional(),
    sha256: z.string().optional(),
    verified: z.enum(["head", "full"]).optional(),
    unchanged: z.boolean().optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional().openapi({ description: "On failure, why; on success, a warning (PRUNE_FAILED)." }),
    reason: z.string().optional().openapi({ description: "Why a skipped run did nothing." }),
  })
  .openapi("RunRecord");

const ProgressSchema = z
  .object({
    phase: z.enum(["starting", "reading", "checking", "hashing", "uploading", "verifying", "pruning"]),
    bytesDone: z.number().int().optional().openapi({ description: "Bytes of the image read so far in this phase." }),
    bytesTotal: z.number().int().optional().openapi({ description: "The image's size, when the source told it." }),
    uploadedBytes: z.number().int().optional().openapi({ description: "Compressed (or encrypted) bytes sent to the store so far." }),
    updatedAt: z.string(),
  })
  .openapi("Progress");

const LastNotifySchema = z
  .object({
    at: z.string().openapi({ description: "When the delivery ended." }),
    delivered: z.boolean().openapi({ description: "Whether the receiver answered 2xx." }),
    run: z.enum(["ok", "failed"]).openapi({ description: "The status of the run it reported." }),
    attempts: z.number().int(),
    httpStatus: z.number().int().optional().openapi({ description: "The receiver's last HTTP status, if it answered." }),
    error: z.string().optional().openapi({ description: "Why it was not delivered (the URL is never included)." }),
  })
  .openapi("LastNotify");

export const StatusSchema = z
  .object({
    name: z.string(),
    running: z.boolean(),
    runningSince: z.string().optional(),
    progress: ProgressSchema.optional().openapi({ description: "While a backup runs in this process or isolate: its phase and bytes." }),
    lastRun: LastRunSchema.nullable(),
    nextRun: z.string().nullable().openapi({ description: "The next scheduled run: Node's scheduler; on Workers from the last cron trigger this isolate saw, else SCHEDULE if set, else null." }),
    lastNotify: LastNotifySchema.nullable().optional().openapi({ description: "The last NOTIFY_URL delivery; present only when NOTIFY_URL is set (null before the first)." }),
    runs: z.array(RunRecordSchema).openapi({ description: "Finished runs, newest first, at most 50; kept in memory, so they start empty after a restart (Node) or in a new isolate (Workers)." }),
  })
  .openapi("Status");

export const MultiStatusSchema = z.object({ databases: z.array(StatusSchema) }).openapi("MultiStatus");

export const HealthSchema = z.object({ status: z.literal("ok") }).openapi("Health");

/** The key's last segment; the pattern is checked against this service's BACKUP_NAME in the handler. */
export const FILE_PATTERN = String.raw`^[a-z0-9][a-z0-9._-]{0,62}-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-[0-9a-f]{6}\.sqlite\.gz(\.age)?$`;

const FileParams = z.object({
  file: z.string().openapi({
    param: { name: "file", in: "path", description: "A backup file name of this service's BACKUP_NAME (the key's last segment), ending in .sqlite.gz, or in .sqlite.gz.age for an age-encrypted backup." },
    pattern: FILE_PATTERN,
    example: "app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz",
  }),
});

const NAME_PARAM = {
  name: "name",
  in: "query" as const,
  description: "Which database (BACKUP_SOURCES entry or BACKUP_NAME). Optional when the deployment has one; required (400 NAME_REQUIRED) when it has several.",
};
const NameQuery = z.object({
  name: z.string().max(63).optional().openapi({ param: NAME_PARAM, example: "app" }),
});

const ListQuery = NameQuery.extend({
  details: z
    .enum(["0", "1", "true", "false"])
    .optional()
    .openapi({ param: { name: "details", in: "query", description: "1 or true: add each backup's sha256, bytes and encrypted from its metadata (one HEAD per backup, 4 at a time)." }, example: "1" }),
});

const LinkQuery = NameQuery.extend({
  redirect: z
    .enum(["0", "1", "true", "false"])
    .optional()
    .openapi({ param: { name: "redirect", in: "query", description: "1 or true: answer 302 with Location = the signed URL." }, example: "1" }),
});

const DeleteQuery = NameQuery.extend({
  force: z
    .enum(["0", "1", "true", "false"])
    .optional()
    .openapi({ param: { name: "force", in: "query", description: "1 or true: allow deleting the newest backup (otherwise 409 NEWEST_BACKUP)." }, example: "1" }),
});

// --------------------------------------------------------------------------------- responses

const error = (description: string) => ({ description, content: { "application/json": { schema: ErrorSchema } } });
const AUTH_ERRORS = {
  401: error("Missing or wrong API key (WWW-Authenticate: Bearer)."),
  403: error("The API is disabled: no API_KEY is configured (API_DISABLED)."),
  413: error("Request body larger than 1 KiB."),
  500: error("Internal or storage error."),
};

const linkResponses = {
  200: { description: "A signed download link.", content: { "application/json": { schema: LinkSchema } } },
  302: {
    description: "With ?redirect=1: a redirect to the signed URL.",
    headers: { Location: { description: "The signed URL.", schema: { type: "string" as const } } },
  },
  400: error("Invalid parameter (INVALID_BACKUP_FILE, NAME_REQUIRED, BAD_REQUEST)."),
  404: error("No such backup or database (BACKUP_NOT_FOUND, UNKNOWN_NAME)."),
  ...AUTH_ERRORS,
};

// ------------------------------------------------------------------------------------ routes

export const healthRoute = createRoute({
  method: "get",
  path: "/health",
  tags: ["meta"],
  summary: "Liveness check (no authentication).",
  responses: { 200: { description: "The server is up.", content: { "application/json": { schema: HealthSchema } } } },
});

export const openApiRoute = createRoute({
  method: "get",
  path: "/openapi.json",
  tags: ["meta"],
  summary: "This OpenAPI 3 document (no authentication).",
  responses: {
    200: {
      description: "The OpenAPI document, generated from the route definitions.",
      content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

export const createBackupRoute = createRoute({
  method: "post",
  path: "/backups",
  tags: ["backups"],
  summary: "Run a backup now; answers when it is uploaded and verified.",
  description: "Takes no request body. One backup of a name at a time, across instances: 409 BACKUP_RUNNING while one runs.",
  security: PROTECTED,
  request: { query: NameQuery },
  responses: {
    201: {
      description: "The backup's manifest.",
      headers: { Location: { description: "The backup's link route.", schema: { type: "string" as const } } },
      content: { "application/json": { schema: ManifestSchema } },
    },
    409: error("A backup is already running (BACKUP_RUNNING); the error carries runningSince."),
    ...AUTH_ERRORS,
    400: error("The source could not be backed up, or ?name= is missing (NAME_REQUIRED); the code says which."),
    404: error("No database of that name (UNKNOWN_NAME)."),
    422: error(
      "The source is not a sound SQLite database: NOT_SQLITE, SQLITE_TRUNCATED, or SQLITE_CORRUPT when it fails CHECK (structure: the b-tree checks over its pages; quick: PRAGMA quick_check; full: PRAGMA integrity_check). Nothing is uploaded.",
    ),
    502: error("The store failed or could not be reached."),
  },
});

export const listBackupsRoute = createRoute({
  method: "get",
  path: "/backups",
  tags: ["backups"],
  summary: "This name's backups, newest first.",
  security: PROTECTED,
  request: { query: ListQuery },
  responses: {
    200: { description: "The backups.", content: { "application/json": { schema: BackupListSchema } } },
    ...AUTH_ERRORS,
  },
});

export const latestLinkRoute = createRoute({
  method: "get",
  path: "/backups/latest/link",
  tags: ["backups"],
  summary: "A signed download link to the newest backup.",
  security: PROTECTED,
  request: { query: LinkQuery },
  responses: linkResponses,
});

export const fileLinkRoute = createRoute({
  method: "get",
  path: "/backups/{file}/link",
  tags: ["backups"],
  summary: "A signed download link to one backup.",
  security: PROTECTED,
  request: { params: FileParams, query: LinkQuery },
  responses: linkResponses,
});

export const deleteBackupRoute = createRoute({
  method: "delete",
  path: "/backups/{file}",
  tags: ["backups"],
  summary: "Delete one backup of this name.",
  description:
    "Removes exactly the object of this file name under this name's folder; nothing else in the bucket is touched. {file} is validated as for links, before any store call (\"latest\" is refused: name the backup). The newest backup needs ?force=1, so that a mistake cannot leave a database with no backup. Logged, and counted in sqlite_backup_deleted_total.",
  security: PROTECTED,
  request: { params: FileParams, query: DeleteQuery },
  responses: {
    200: { description: "The backup that was deleted.", content: { "application/json": { schema: DeletedSchema } } },
    400: error("Invalid parameter (INVALID_BACKUP_FILE, NAME_REQUIRED, BAD_REQUEST)."),
    404: error("No such backup or database (BACKUP_NOT_FOUND, UNKNOWN_NAME)."),
    409: error("It is the newest backup and ?force=1 was not given (NEWEST_BACKUP)."),
    ...AUTH_ERRORS,
    502: error("The store failed or could not be reached."),
  },
});

const DownloadParams = z.object({
  // Not checked here: a link's faults are all 403 (the signature is checked first, in the handler).
  file: z.string().openapi({ param: { name: "file", in: "path", description: "The backup file name the link was made for." }, example: "app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz" }),
});
const DownloadQuery = z.object({
  name: z.string().optional().openapi({ param: { name: "name", in: "query", description: "The database the link was made for (signed)." }, example: "app" }),
  expires: z.string().optional().openapi({ param: { name: "expires", in: "query", description: "Unix time in seconds after which the link is refused (signed)." }, example: "1795430556" }),
  sig: z.string().optional().openapi({ param: { name: "sig", in: "query", description: "base64url HMAC-SHA256 with LINK_SECRET over method, path, name and expires." } }),
});
const RangeHeader = z.object({
  range: z.string().optional().openapi({ param: { name: "range", in: "header", description: "One range: bytes=a-b, bytes=a- or bytes=-n. Several ranges are ignored (200 with everything)." }, example: "bytes=0-1023" }),
});
const bytes = (description: string) => ({
  description,
  headers: {
    "Content-Length": { description: "Bytes in this response.", schema: { type: "integer" as const } },
    "Content-Disposition": { description: 'attachment; filename="<file>"', schema: { type: "string" as const } },
    "Accept-Ranges": { description: "bytes", schema: { type: "string" as const } },
  },
  content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
});

export const downloadRoute = createRoute({
  method: "get",
  path: "/download/{file}",
  tags: ["backups"],
  summary: "Download a backup through this server with a link from GET /backups/{file}/link (LINK_MODE=worker).",
  description:
    "No API key: the signature is the credential. Any change to the link (path, name, expires, sig), a link made with another LINK_SECRET, or another method than GET/HEAD is refused with 403 LINK_INVALID; after `expires`, 403 LINK_EXPIRED. HEAD answers the same headers without a body.",
  request: { params: DownloadParams, query: DownloadQuery, headers: RangeHeader },
  responses: {
    200: bytes("The whole backup object."),
    206: bytes("One range of it, with Content-Range: bytes a-b/size."),
    403: error("LINK_INVALID, LINK_EXPIRED, or DOWNLOADS_DISABLED (no LINK_SECRET on this server)."),
    404: error("The backup or database no longer exists (BACKUP_NOT_FOUND, UNKNOWN_NAME)."),
    416: error("The range lies wholly past the end (RANGE_NOT_SATISFIABLE); Content-Range: bytes */size."),
    500: error("Internal or storage error."),
  },
});

export const statusRoute = createRoute({
  method: "get",
  path: "/status",
  tags: ["meta"],
  summary: "Whether a backup runs now, the last run and the next scheduled one.",
  description: "With several databases and no ?name=, every database's status as {databases:[…]}.",
  security: PROTECTED,
  request: { query: NameQuery },
  responses: {
    200: { description: "The status.", content: { "application/json": { schema: z.union([StatusSchema, MultiStatusSchema]) } } },
    ...AUTH_ERRORS,
  },
});

export const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["meta"],
  summary: "Run counts and last-run gauges in the Prometheus text format (0.0.4).",
  description:
    "Values are kept per process (Node) or per isolate (Workers). sqlite_backup_last_success_timestamp_seconds is seeded from the newest backup in the bucket at the first scrape, so it holds across restarts and isolates.",
  security: PROTECTED,
  responses: {
    200: {
      description: "Prometheus text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4; charset=utf-8).",
      content: { "text/plain": { schema: z.string().openapi({ example: 'sqlite_backup_runs_total{name="app",result="success"} 3' }) } },
    },
    ...AUTH_ERRORS,
  },
});
