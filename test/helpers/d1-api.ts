/**
 * The Cloudflare D1 export API, played by a node:http server on 127.0.0.1 (port 0), as
 * wrangler's `d1 export --remote` uses it (wrangler-dist/cli.js, pollExport): every answer is
 * Cloudflare's envelope `{ success, errors, messages, result }`; the export's own state is in
 * `result` (`success`, `type: "export"`, `at_bookmark`, `status: "active" | "complete" |
 * "error"`, `messages`, `error`, and when complete `result: { filename, signed_url }`). The
 * first POST `{ output_format: "polling" }` starts an export; each later POST must carry the
 * last `at_bookmark` as `current_bookmark`. The dump is served from the "signed URL", which
 * needs no Authorization (and gets none from a correct client).
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeD1Behaviour {
  /** "active" answers before the export completes (default 2). */
  activePolls?: number;
  /** "ok" (default), "error": the export fails after its active polls, "never": it stays active. */
  outcome?: "ok" | "error" | "never";
  /** Send the dump without Content-Length (chunked), as a server that does not announce it. */
  chunked?: boolean;
  /** The Content-Length announced, if not the dump's own (a lie, to test the size limit before loading). */
  announce?: number;
}

export interface ApiRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown> | undefined;
}

export interface FakeD1Api {
  /** CLOUDFLARE_API_BASE_URL for this server (…/client/v4). */
  base: string;
  accountId: string;
  databaseId: string;
  token: string;
  requests: ApiRequest[];
  /** The bookmarks handed out, in order; the last is the export's. */
  bookmarks: string[];
  set(behaviour: FakeD1Behaviour, dump?: Uint8Array): void;
  close(): Promise<void>;
}

export async function startFakeD1Api(dump: Uint8Array, given: { accountId?: string; databaseId?: string; token?: string } = {}): Promise<FakeD1Api> {
  const accountId = given.accountId ?? randomBytes(16).toString("hex");
  const databaseId = given.databaseId ?? "6a0c7d3e-2f1b-4c5d-9e8f-0a1b2c3d4e5f";
  const token = given.token ?? `cf-${randomBytes(20).toString("base64url")}`;
  let behaviour: FakeD1Behaviour = {};
  let served = dump;
  const requests: ApiRequest[] = [];
  const bookmarks: string[] = [];
  // The export in progress: its bookmark and polls so far; a new one starts without current_bookmark.
  let current: { bookmark: string; polls: number } | undefined;
  const signed = new Map<string, Uint8Array>();
  const exportPath = `/client/v4/accounts/${accountId}/d1/database/${databaseId}/export`;

  const envelope = (result: unknown, errors: { code: number; message: string }[] = []) => JSON.stringify({ success: errors.length === 0, errors, messages: [], result });
  const nextBookmark = () => {
    const b = `${String(bookmarks.length + 1).padStart(8, "0")}-0000004f-00004fa3-${randomBytes(16).toString("hex")}`;
    bookmarks.push(b);
    return b;
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const raw = await readBody(req);
      let body: Record<string, unknown> | undefined;
      try {
        body = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
      } catch {
        body = undefined;
      }
      requests.push({ method: req.method ?? "", path: url.pathname, authorization: req.headers.authorization, body });
      const json = (status: number, text: string) => res.writeHead(status, { "Content-Type": "application/json" }).end(text);

      if (req.method === "GET" && url.pathname.startsWith("/signed/")) {
        const data = signed.get(url.pathname.slice("/signed/".length));
        if (!data || url.searchParams.get("X-Amz-Signature") === null) return void res.writeHead(403).end("<Error><Code>AccessDenied</Code></Error>");
        if (behaviour.chunked) {
          res.writeHead(200, { "Content-Type": "application/sql" });
          for (let at = 0; at < data.length; at += 64 * 1024) res.write(data.subarray(at, at + 64 * 1024));
          return void res.end();
        }
        res.writeHead(200, { "Content-Type": "application/sql", "Content-Length": behaviour.announce ?? data.length });
        return void res.end(data);
      }
      if (!url.pathname.startsWith("/client/v4/")) return void json(404, envelope(null, [{ code: 7000, message: "No route for that URI" }]));
      if (req.headers.authorization !== `Bearer ${token}`) {
        return void json(401, envelope(null, [{ code: 10000, message: "Authentication error" }]));
      }
      if (req.method !== "POST" || url.pathname !== exportPath) {
        return void json(404, envelope(null, [{ code: 7404, message: `The database ${url.pathname.split("/")[6] ?? ""} could not be found` }]));
      }
      if (body?.output_format !== "polling") return void json(400, envelope(null, [{ code: 7400, message: "output_format must be 'polling'" }]));
      const asked = body.current_bookmark;
      if (asked === undefined) {
        current = { bookmark: nextBookmark(), polls: 0 };
      } else if (!current || asked !== current.bookmark) {
        return void json(400, envelope(null, [{ code: 7500, message: "Unknown bookmark: no export in progress at it" }]));
      } else {
        current.polls++;
      }
      const result = { success: true, type: "export", at_bookmark: current.bookmark, messages: [] as string[], status: "active" as string, error: undefined as string | undefined, result: undefined as unknown };
      const outcome = behaviour.outcome ?? "ok";
      if (outcome === "never" || current.polls < (behaviour.activePolls ?? 2)) {
        result.messages.push(current.polls === 0 ? `Generating ${databaseId}-${current.bookmark}.sql` : `Uploaded part ${current.polls}`);
        // The API reference: 202 "Polled successfully, task is currently running"; 200 once it is no longer running.
        return void json(202, envelope(result));
      }
      if (outcome === "error") {
        result.status = "error";
        result.success = false;
        result.error = "Export failed: the database was reset during the export";
        return void json(200, envelope(result));
      }
      const id = randomBytes(12).toString("hex");
      signed.set(id, served);
      result.status = "complete";
      result.messages.push(`Exported to ${databaseId}-${current.bookmark}.sql`);
      result.result = { filename: `${databaseId}-${current.bookmark}.sql`, signed_url: `${base.replace(/\/client\/v4$/, "")}/signed/${id}?X-Amz-Expires=3600&X-Amz-Signature=${randomBytes(16).toString("hex")}` };
      current = undefined;
      json(200, envelope(result));
    })().catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/client/v4`;
  return {
    base,
    accountId,
    databaseId,
    token,
    requests,
    bookmarks,
    set(b, d) {
      behaviour = b;
      if (d) served = d;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
