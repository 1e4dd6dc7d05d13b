/**
 * GET /download/{file}?name=…&expires=…&sig=… — a backup served by this server (LINK_MODE=worker;
 * the link is made by GET /backups/{file}/link, signed with LINK_SECRET, see src/links.ts).
 * The signature is the credential: no API key. Checked before anything else, so a changed
 * or foreign link learns nothing (403 for every fault of the link itself, whatever the file).
 *
 *   200  the whole object, Content-Length, Content-Disposition: attachment, Accept-Ranges
 *   206  one range (Range: bytes=a-b | bytes=a- | bytes=-n), with Content-Range
 *   416  a range wholly past the end, Content-Range: bytes *\/size
 *   403  LINK_INVALID (changed, cut short, another secret, another method) | LINK_EXPIRED |
 *        DOWNLOADS_DISABLED (no LINK_SECRET here)
 *
 * Several ranges, or a malformed Range header, are ignored: 200 with everything. HEAD is
 * answered for GET links with the same headers and no body (and no read from the store).
 */
import type { Context } from "hono";
import type { BackupService } from "../service.js";
import { contentRange, parseRange } from "../http-range.js";
import type { LinkSigner } from "../links.js";
import { HttpError } from "./errors.js";

export interface DownloadDeps {
  signer: LinkSigner;
  ttlSeconds: number;
  now: () => Date;
  /** ?name= → the database's service (NAME_REQUIRED / UNKNOWN_NAME), only after the signature holds. */
  pick: (name: string | undefined) => BackupService;
  /** Throws INVALID_BACKUP_FILE unless `file` is one of `name`'s backup file names (as the link route checks it). */
  assertFile: (name: string, file: string) => void;
}

export function downloadHandler(deps: DownloadDeps | undefined) {
  return async (c: Context): Promise<Response> => {
    if (!deps) {
      throw new HttpError(403, "DOWNLOADS_DISABLED", "downloads through this server are off: set LINK_SECRET (and LINK_MODE=worker to hand out such links) and restart.");
    }
    const file = c.req.param("file") ?? "";
    const name = c.req.query("name");
    // The method is part of what is signed: a GET link does not authorise POST, PUT or DELETE.
    await deps.signer.verify({ method: c.req.method, file, name: name ?? "", expires: c.req.query("expires"), sig: c.req.query("sig") }, deps.now(), deps.ttlSeconds);
    const service = deps.pick(name);
    deps.assertFile(service.name, file);

    const headersOnly = c.req.method === "HEAD";
    const d = await service.open(file, { range: parseRange(c.req.header("Range")), ifRange: c.req.header("If-Range"), headersOnly });
    if (d.kind === "unsatisfiable") {
      throw new HttpError(416, "RANGE_NOT_SATISFIABLE", `the requested range is not within ${file} (${d.size} bytes): ask for bytes 0-${Math.max(d.size - 1, 0)} or fewer.`, {
        headers: { "Content-Range": contentRange(undefined, d.size), "Accept-Ranges": "bytes" },
      });
    }
    const headers = new Headers({
      "Content-Type": d.contentType ?? "application/octet-stream",
      // The file name is validated (a-z, 0-9, '.', '_', '-'): nothing to escape.
      "Content-Disposition": `attachment; filename="${file}"`,
      "Content-Length": String(d.range ? d.range.length : d.size),
      "Accept-Ranges": "bytes",
    });
    if (d.range) headers.set("Content-Range", contentRange(d.range, d.size));
    if (d.etag) headers.set("ETag", d.etag);
    if (d.lastModified) headers.set("Last-Modified", d.lastModified.toUTCString());
    return new Response(headersOnly ? null : (d.body ?? null), { status: d.range ? 206 : 200, headers });
  };
}
