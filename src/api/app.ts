/**
 * The HTTP API: one Hono app on web-standard Request/Response, so the same object serves
 * Cloudflare Workers (`fetch`) and Node (@hono/node-server). Routes and schemas are in
 * routes.ts, authentication in auth.ts, the error shape in errors.ts.
 *
 *   GET  /                        the status page (HTML; its script and style under /page/)  (no auth, no data)
 *   GET  /health                  200 {"status":"ok"}                      (no auth)
 *   POST /backups                 201 manifest, 409 BACKUP_RUNNING
 *   GET  /backups                 200 {"backups":[…]} newest first; ?details=1 adds sha256, bytes, verified
 *   GET  /backups/latest/link     200 {url,key,expiresAt,size} | 302 with ?redirect=1
 *   GET  /backups/{file}/link     same; 400 INVALID_BACKUP_FILE, 404 BACKUP_NOT_FOUND
 *   DELETE /backups/{file}        200 what was deleted; 404, 409 NEWEST_BACKUP without ?force=1
 *   GET  /download/{file}?name&expires&sig   the backup's bytes (LINK_MODE=worker links; signed, no API key)
 *   GET  /status                  200 status
 *   GET  /metrics                 200 Prometheus text format 0.0.4
 *   GET  /openapi.json            the OpenAPI 3 document of these routes   (no auth)
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Config } from "../config.js";
import { BackupError } from "../errors.js";
import { pickService } from "../fleet.js";
import { parseFile } from "../keys.js";
import { METRICS_CONTENT_TYPE } from "../metrics.js";
import type { Logger } from "../log.js";
import type { BackupService } from "../service.js";
import { createLinkSigner } from "../links.js";
import { downloadHandler } from "./download.js";
import { accessLog } from "./access-log.js";
import { requireApiKey } from "./auth.js";
import { bodyLimit } from "./body-limit.js";
import { corsFor } from "./cors.js";
import { createErrorHandler, HttpError, notFoundHandler, validationHook } from "./errors.js";
import { responseHeaders } from "./headers.js";
import { registerPage } from "./page/index.js";
import {
  createBackupRoute,
  deleteBackupRoute,
  downloadRoute,
  fileLinkRoute,
  healthRoute,
  latestLinkRoute,
  listBackupsRoute,
  metricsRoute,
  openApiRoute,
  securitySchemes,
  statusRoute,
} from "./routes.js";

export interface ApiDeps {
  /** One per database (BACKUP_SOURCES), at least one; routes pick one by ?name=. */
  services: readonly BackupService[];
  /** API_KEY; unset = every protected route answers 403 API_DISABLED. */
  apiKey?: string;
  /** CORS_ORIGINS: browser origins allowed to call the API ("*" = any); empty or unset = no CORS headers. */
  corsOrigins?: readonly string[];
  /**
   * LINK_SECRET and LINK_TTL_SECONDS: GET /download/{file} serves links signed with the secret
   * (whatever LINK_MODE hands out now, so links already given stay good); unset = 403 DOWNLOADS_DISABLED.
   */
  downloads?: { secret: string; ttlSeconds: number };
  /** The clock links are checked against (default: the system's). */
  now?: () => Date;
  logger: Logger;
}

/** ApiDeps.downloads from a configuration: on whenever LINK_SECRET is set. */
export function downloadsOf(config: Pick<Config, "linkSecret" | "linkTtlSeconds">): Pick<ApiDeps, "downloads"> {
  return config.linkSecret ? { downloads: { secret: config.linkSecret, ttlSeconds: config.linkTtlSeconds } } : {};
}

export const API_TITLE = "sqlite-edge-backup";
export const API_VERSION = "1.0.0";
/** Longer than any valid file name (63-character name + 44 with .age); checked before the pattern. */
const MAX_FILE_LENGTH = 128;

export function createApp(deps: ApiDeps): OpenAPIHono {
  const { services, logger } = deps;
  const names = services.map((s) => s.name);
  const pick = (c: Context) => pickService(services, c.req.query("name"));
  const auth = requireApiKey(deps.apiKey);
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.use("*", accessLog(logger));
  app.use("*", responseHeaders());
  // Off unless configured: without CORS headers a browser page on another origin cannot read
  // any answer. Preflights are answered before authentication, as browsers send no key with them.
  if (deps.corsOrigins?.length) app.use("*", corsFor(deps.corsOrigins));
  app.use("*", bodyLimit());
  app.onError(createErrorHandler(logger));
  app.notFound(notFoundHandler);

  for (const [id, scheme] of Object.entries(securitySchemes)) app.openAPIRegistry.registerComponent("securitySchemes", id, scheme);

  app.openapi(healthRoute, (c) => c.json({ status: "ok" as const }, 200));

  app.openapi({ ...createBackupRoute, middleware: auth }, async (c) => {
    const service = pick(c);
    try {
      const manifest = await service.backup();
      const query = services.length > 1 ? `?name=${encodeURIComponent(manifest.name)}` : "";
      c.header("Location", `/backups/${manifest.file}/link${query}`);
      return c.json(manifest, 201);
    } catch (err) {
      throw withRunningSince(err, service);
    }
  });

  registerPage(app);

  app.openapi({ ...listBackupsRoute, middleware: auth }, async (c) => {
    const details = c.req.valid("query").details;
    const service = pick(c);
    return c.json({ backups: details === "1" || details === "true" ? await service.listDetails() : await service.list() }, 200);
  });

  // Registered before {file}: both match /backups/latest/link and the first one answers.
  app.openapi({ ...latestLinkRoute, middleware: auth }, async (c) => link(c, pick(c), "latest", c.req.valid("query").redirect));

  app.openapi({ ...fileLinkRoute, middleware: auth }, async (c) => {
    const { file } = c.req.valid("param");
    const service = pick(c);
    if (file !== "latest") assertBackupFile(service.name, file);
    return link(c, service, file, c.req.valid("query").redirect);
  });

  // A {file} that spans several path segments (/backups/a/b/link) is an invalid file name,
  // not an unknown route. Not part of the document.
  app.get("/backups/:file{.+}/link", auth, (c) => {
    throw invalidFile(pick(c).name);
  });

  app.openapi({ ...deleteBackupRoute, middleware: auth }, async (c) => {
    const { file } = c.req.valid("param");
    const { force } = c.req.valid("query");
    const service = pick(c);
    // "latest" is refused: a delete names the backup it means.
    if (file === "latest") throw invalidFile(service.name, false);
    assertBackupFile(service.name, file, false);
    return c.json(await service.deleteBackup(file, { force: force === "1" || force === "true" }), 200);
  });

  // As for links: several path segments are an invalid file name, not an unknown route.
  app.delete("/backups/:file{.+}", auth, (c) => {
    throw invalidFile(pick(c).name, false);
  });
  // The link's signature is its credential (no API key). Registered for every method: another
  // method than GET/HEAD, or a path of several segments, fails the signature (403), not 404.
  const download = downloadHandler(
    deps.downloads && {
      signer: createLinkSigner(deps.downloads.secret),
      ttlSeconds: deps.downloads.ttlSeconds,
      now: deps.now ?? (() => new Date()),
      pick: (name) => pickService(services, name),
      assertFile: assertBackupFile,
    },
  );
  app.openapi(downloadRoute, download);
  app.all("/download/:file{.+}", download);

  app.openapi({ ...statusRoute, middleware: auth }, (c) =>
    services.length > 1 && !c.req.query("name") ? c.json({ databases: services.map((s) => s.status()) }, 200) : c.json(pick(c).status(), 200),
  );

  // The services share one metrics registry (one series per name).
  const metrics = services[0]!.metrics;
  let seeded: Promise<void> | undefined;
  app.openapi({ ...metricsRoute, middleware: auth }, async (c) => {
    await (seeded ??= Promise.all(services.map((s) => seedLastSuccess(s, logger))).then(() => undefined));
    return c.text(metrics.render(), 200, { "Content-Type": METRICS_CONTENT_TYPE });
  });

  let document: ReturnType<typeof app.getOpenAPIDocument> | undefined;
  app.openapi(openApiRoute, (c) => {
    document ??= app.getOpenAPIDocument({
      openapi: "3.0.3",
      info: {
        title: API_TITLE,
        version: API_VERSION,
        description: `Backups of the SQLite database${names.length > 1 ? "s" : ""} ${names.map((n) => `"${n}"`).join(", ")} to S3-compatible storage. Protected routes take "Authorization: Bearer <API_KEY>" or "X-API-Key: <API_KEY>".`,
      },
      tags: [{ name: "backups" }, { name: "meta" }],
    });
    return c.json(document as unknown as Record<string, unknown>, 200);
  });

  async function link(c: Context, service: BackupService, which: string, redirect: string | undefined) {
    // LINK_MODE=worker links point at the origin this request reached (LINK_BASE_URL overrides
    // it): on Workers the Worker's own hostname, on Node the Host header the client sent.
    // X-Forwarded-* are not consulted: behind a proxy, set LINK_BASE_URL.
    const found = await service.link(which, { origin: new URL(c.req.url).origin });
    if (redirect === "1" || redirect === "true") return c.redirect(found.url, 302);
    return c.json(found, 200);
  }

  return app;
}

function invalidFile(name: string, latest = true): HttpError {
  return new HttpError(
    400,
    "INVALID_BACKUP_FILE",
    `the {file} path parameter is not a backup file name of "${name}": expected ${name}-YYYY-MM-DDTHH-MM-SS-mmmZ-xxxxxx.sqlite.gz or .sqlite.gz.age (the key's last segment, as listed by GET /backups)${latest ? ' or "latest"' : ""}.`,
  );
}

/** Validation before any store call: exactly this name's key pattern, one path segment. */
function assertBackupFile(name: string, file: string, latest = true): void {
  if (file.length > MAX_FILE_LENGTH || !parseFile(name, file)) throw invalidFile(name, latest);
}

/** Waited for at most this long by the first scrape; the seed still lands if the listing is slower. */
const SEED_WAIT_MS = 5000;

/**
 * Before this process has a success of its own, the newest backup in the bucket is the last
 * success: a restarted server or a fresh Workers isolate does not report "never". Once per
 * app, and a failing or slow listing only costs the seed, never the scrape.
 */
async function seedLastSuccess(service: BackupService, logger: Logger): Promise<void> {
  const name = service.name;
  const seed = service.list().then(
    ([newest]) => {
      if (newest) service.metrics.seedLastSuccess(name, new Date(newest.lastModified));
    },
    (err: unknown) => logger.warn("metrics: could not read the newest backup's time", { name, error: err instanceof Error ? err.message : String(err) }),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([seed, new Promise<void>((resolve) => (timer = setTimeout(resolve, SEED_WAIT_MS)))]);
  if (timer !== undefined) clearTimeout(timer);
}

/** 409 BACKUP_RUNNING gains `runningSince` (the message already names the start time). */
function withRunningSince(err: unknown, service: BackupService): unknown {
  if (!(err instanceof BackupError) || err.code !== "BACKUP_RUNNING") return err;
  const since = service.status().runningSince;
  return new HttpError(err.status, err.code, err.message, { details: since ? { runningSince: since } : {}, cause: err });
}
