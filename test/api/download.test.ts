/**
 * Downloads served by the server itself (LINK_MODE=worker, LINK_SECRET): GET /backups/{file}/link
 * hands out /download/{file}?name&expires&sig, and GET /download serves the object's exact bytes,
 * whole or one range, while every change to the link (path, name, expiry, signature, secret,
 * method) is refused with 403 before the store is asked anything. The real service over the
 * in-process S3 server; the curl cases run the real curl binary against the app on a Node HTTP
 * server on 127.0.0.1.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Server } from "node:http";
import { DeleteObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, downloadsOf } from "../../src/api/app.js";
import { createLinkSigner } from "../../src/links.js";
import { sha256 } from "../helpers/db.js";
import { registerSecret } from "../helpers/log-capture.js";
import { expectErrorShape, Harness, type Answer, type Wired } from "./harness.js";

const run = promisify(execFile);
const h = new Harness();
const SECRET = registerSecret("LINK_SECRET", `link-${randomBytes(24).toString("hex")}`);
const TTL = 900;

let w: Wired;
/** Two backups of "dl", oldest first, and the first one's bytes as stored. */
let files: string[] = [];
let object: Uint8Array;

async function stored(file: string): Promise<Uint8Array> {
  const r = await h.s3.client.send(new GetObjectCommand({ Bucket: h.s3.bucket, Key: `backups/dl/${file}` }));
  return new Uint8Array(await r.Body!.transformToByteArray());
}

async function linkOf(wired: Wired, file: string): Promise<Answer> {
  const a = await h.call(wired.app, `/backups/${file}/link`, h.bearer());
  expect(a.status, a.text).toBe(200);
  return a;
}

/** The link's path and query (app.request takes them; its origin is http://localhost). */
const pathOf = (url: string) => {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
};

/** A GET of `path` whose body is kept as bytes (h.call reads text). */
async function fetchBytes(app: Wired["app"], path: string, headers: Record<string, string> = {}, method = "GET") {
  const res = await app.request(path, { method, headers });
  const body = new Uint8Array(await res.arrayBuffer());
  h.transcript.push(`${res.status} ${method} ${path}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}`);
  return { res, status: res.status, body };
}

beforeAll(async () => {
  await h.start();
  w = await h.wire("dl", { db: { rows: 500, targetBytes: 300 * 1024 }, env: { LINK_MODE: "worker", LINK_SECRET: SECRET, LINK_TTL_SECONDS: String(TTL) } });
  for (let i = 0; i < 2; i++) {
    const a = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(a.status, a.text).toBe(201);
    files.push(a.json.file);
  }
  object = await stored(files[0]!);
  expect(object.length).toBeGreaterThan(100 * 1024);
});
afterAll(async () => {
  h.assertNoSecrets();
  await h.close();
});

describe("GET /backups/{file}/link with LINK_MODE=worker", () => {
  it("answers a /download URL of this server, signed, expiring after LINK_TTL_SECONDS; the store signs nothing", async () => {
    const before = Date.now();
    w.storeCalls.length = 0;
    const a = await linkOf(w, files[0]!);
    const u = new URL(a.json.url);
    expect(u.origin).toBe("http://localhost");
    expect(u.pathname).toBe(`/download/${files[0]}`);
    expect([...u.searchParams.keys()]).toEqual(["name", "expires", "sig"]);
    expect(u.searchParams.get("name")).toBe("dl");
    expect(u.searchParams.get("sig")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const expires = Number(u.searchParams.get("expires"));
    expect(expires * 1000).toBe(Date.parse(a.json.expiresAt));
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) + TTL);
    expect(expires).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + TTL);
    expect(a.json).toMatchObject({ key: `backups/dl/${files[0]}`, size: object.length });
    expect(w.storeCalls.some((c) => c.startsWith("presign"))).toBe(false);
    expect(a.text).not.toContain(SECRET);
  });

  it("latest links to the newest backup's file", async () => {
    const a = await h.call(w.app, "/backups/latest/link", h.bearer());
    expect(a.status, a.text).toBe(200);
    expect(new URL(a.json.url).pathname).toBe(`/download/${files[1]}`);
  });

  it("?redirect=1 redirects to the /download URL", async () => {
    const a = await h.call(w.app, `/backups/${files[0]}/link?redirect=1`, h.bearer());
    expect(a.status).toBe(302);
    expect(new URL(a.res.headers.get("location")!).pathname).toBe(`/download/${files[0]}`);
  });

  it("without a request (CLI, library) a link needs LINK_BASE_URL: CONFIG_INVALID naming it", async () => {
    const e = await w.service.link(files[0]!).then(
      () => undefined,
      (err: unknown) => err as { code: string; message: string },
    );
    expect(e?.code).toBe("CONFIG_INVALID");
    expect(e?.message).toContain("set LINK_BASE_URL");
    const based = await h.wire("dl", { env: { LINK_MODE: "worker", LINK_SECRET: SECRET, LINK_BASE_URL: "https://backups.example.com" } });
    expect((await based.service.link(files[0]!)).url).toMatch(/^https:\/\/backups\.example\.com\/download\//);
  });

  it("LINK_BASE_URL replaces the request's origin", async () => {
    const based = await h.wire("dl", { env: { LINK_MODE: "worker", LINK_SECRET: SECRET, LINK_BASE_URL: "https://backups.example.com/edge/" } });
    const a = await linkOf(based, files[0]!);
    expect(a.json.url).toMatch(new RegExp(`^https://backups\\.example\\.com/edge/download/${files[0]!.replace(/\./g, "\\.")}\\?name=dl&expires=\\d+&sig=`));
  });
});

describe("GET /download/{file}", () => {
  let path: string;
  beforeAll(async () => {
    path = pathOf((await linkOf(w, files[0]!)).json.url);
  });

  it("serves exactly the stored bytes with Content-Length, Content-Disposition: attachment and Accept-Ranges, without the API key", async () => {
    w.storeCalls.length = 0;
    const d = await fetchBytes(w.app, path);
    expect(d.status).toBe(200);
    expect(sha256(d.body)).toBe(sha256(object));
    expect(d.res.headers.get("content-length")).toBe(String(object.length));
    expect(d.res.headers.get("content-disposition")).toBe(`attachment; filename="${files[0]}"`);
    expect(d.res.headers.get("content-type")).toBe("application/gzip");
    expect(d.res.headers.get("accept-ranges")).toBe("bytes");
    expect(d.res.headers.get("etag")).toMatch(/^".+"$/);
    expect(d.res.headers.get("cache-control")).toBe("no-store");
    expect(d.res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(d.res.headers.get("content-range")).toBeNull();
    expect(w.storeCalls).toEqual([`head backups/dl/${files[0]}`, `read backups/dl/${files[0]}`]);
  });

  it.each([
    ["bytes=10-99", 10, 99],
    ["bytes=1000-", 1000, -1],
    ["bytes=-50", -50, -1],
    ["bytes=7-7", 7, 7],
    ["bytes=100-99999999", 100, -1],
  ])("Range %s → 206 with exactly those bytes and Content-Range", async (range, from, to) => {
    const size = object.length;
    const start = from < 0 ? size + from : from;
    const end = to < 0 ? size - 1 : to;
    const d = await fetchBytes(w.app, path, { Range: range });
    expect(d.status).toBe(206);
    expect(Buffer.from(d.body).equals(Buffer.from(object.subarray(start, end + 1)))).toBe(true);
    expect(d.res.headers.get("content-range")).toBe(`bytes ${start}-${end}/${size}`);
    expect(d.res.headers.get("content-length")).toBe(String(end - start + 1));
    expect(d.res.headers.get("content-disposition")).toBe(`attachment; filename="${files[0]}"`);
  });

  it.each(["bytes=0-1,5-6", "bytes=5-2", "items=0-10", "bytes=abc"])("Range %s is ignored: 200 with everything", async (range) => {
    const d = await fetchBytes(w.app, path, { Range: range });
    expect(d.status).toBe(200);
    expect(sha256(d.body)).toBe(sha256(object));
  });

  it.each(["bytes=999999999-", "bytes=-0"])("Range %s → 416 with Content-Range: bytes */size", async (range) => {
    w.storeCalls.length = 0;
    const a = await h.call(w.app, path, { headers: { Range: range } });
    expectErrorShape(a, 416, "RANGE_NOT_SATISFIABLE");
    expect(a.res.headers.get("content-range")).toBe(`bytes */${object.length}`);
    expect(w.storeCalls.some((c) => c.startsWith("read"))).toBe(false);
  });

  it("If-Range with the ETag keeps the range; with another validator the whole object comes", async () => {
    const etag = (await fetchBytes(w.app, path, {}, "HEAD")).res.headers.get("etag")!;
    const same = await fetchBytes(w.app, path, { Range: "bytes=5-9", "If-Range": etag });
    expect(same.status).toBe(206);
    const other = await fetchBytes(w.app, path, { Range: "bytes=5-9", "If-Range": '"not-this-one"' });
    expect(other.status).toBe(200);
    expect(other.body.length).toBe(object.length);
  });

  it("HEAD answers the headers without a body and without reading the object", async () => {
    w.storeCalls.length = 0;
    const d = await fetchBytes(w.app, path, {}, "HEAD");
    expect(d.status).toBe(200);
    expect(d.body.length).toBe(0);
    expect(d.res.headers.get("content-length")).toBe(String(object.length));
    expect(d.res.headers.get("content-disposition")).toBe(`attachment; filename="${files[0]}"`);
    expect(w.storeCalls).toEqual([`head backups/dl/${files[0]}`]);
    const ranged = await fetchBytes(w.app, path, { Range: "bytes=-10" }, "HEAD");
    expect(ranged.status).toBe(206);
    expect(ranged.res.headers.get("content-range")).toBe(`bytes ${object.length - 10}-${object.length - 1}/${object.length}`);
  });

  it("the link's query string never reaches the log", () => {
    const logged = h.logLines.filter((l) => l.includes("/download/"));
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expect(line).not.toMatch(/sig=|expires=/);
  });
});

describe("a changed, foreign or expired link → 403, and the store is not asked", () => {
  let url: URL;
  beforeAll(async () => {
    url = new URL((await linkOf(w, files[0]!)).json.url);
  });
  const variant = (change: (u: URL) => void) => {
    const u = new URL(url);
    change(u);
    return pathOf(u.toString());
  };
  const claim = () => ({ method: "GET", file: files[0]!, name: "dl", expires: Number(url.searchParams.get("expires")) });

  const expect403 = async (path: string, code: "LINK_INVALID" | "LINK_EXPIRED", init: RequestInit = {}) => {
    w.storeCalls.length = 0;
    const a = await h.call(w.app, path, init);
    expectErrorShape(a, 403, code);
    expect(w.storeCalls).toEqual([]);
    return a;
  };

  it("another backup's path with this signature", async () => {
    await expect403(variant((u) => (u.pathname = `/download/${files[1]}`)), "LINK_INVALID");
  });

  it("a path with more segments, or a name that is not a backup file", async () => {
    await expect403(variant((u) => (u.pathname = `/download/x/${files[0]}`)), "LINK_INVALID");
    await expect403(variant((u) => (u.pathname = `/download/..%2F..%2Fsecret`)), "LINK_INVALID");
  });

  it("a later expiry, an earlier one, or none", async () => {
    await expect403(variant((u) => u.searchParams.set("expires", String(Number(u.searchParams.get("expires")) + 1))), "LINK_INVALID");
    await expect403(variant((u) => u.searchParams.set("expires", String(Number(u.searchParams.get("expires")) - 1))), "LINK_INVALID");
    await expect403(variant((u) => u.searchParams.delete("expires")), "LINK_INVALID");
    await expect403(variant((u) => u.searchParams.set("expires", "1e12")), "LINK_INVALID");
  });

  it("a changed, cut or missing signature", async () => {
    const sig = url.searchParams.get("sig")!;
    const flipped = `${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`;
    await expect403(variant((u) => u.searchParams.set("sig", flipped)), "LINK_INVALID");
    await expect403(variant((u) => u.searchParams.set("sig", sig.slice(0, 42))), "LINK_INVALID");
    await expect403(variant((u) => u.searchParams.delete("sig")), "LINK_INVALID");
  });

  it("another database name, or none", async () => {
    await expect403(variant((u) => u.searchParams.set("name", "other")), "LINK_INVALID");
    await expect403(variant((u) => u.searchParams.delete("name")), "LINK_INVALID");
  });

  it("the same link signed with another key", async () => {
    const foreign = await createLinkSigner(`other-${randomBytes(24).toString("hex")}`).sign(claim());
    await expect403(variant((u) => u.searchParams.set("sig", foreign)), "LINK_INVALID");
  });

  it.each(["POST", "PUT", "DELETE", "PATCH"])("method %s with a GET link", async (method) => {
    await expect403(pathOf(url.toString()), "LINK_INVALID", { method });
  });

  it("a correctly signed link past its expiry → LINK_EXPIRED", async () => {
    const expires = Math.floor(Date.now() / 1000) - 1;
    const sig = await createLinkSigner(SECRET).sign({ ...claim(), expires });
    const a = await expect403(variant((u) => (u.searchParams.set("expires", String(expires)), u.searchParams.set("sig", sig))), "LINK_EXPIRED");
    expect(a.json.error.message).toContain(new Date(expires * 1000).toISOString());
  });

  it("the app's clock past the link's expiry → LINK_EXPIRED", async () => {
    const later = await h.wire("dl", { env: { LINK_MODE: "worker", LINK_SECRET: SECRET }, now: () => new Date(Date.now() + (TTL + 1) * 1000) });
    w.storeCalls.length = 0;
    expectErrorShape(await h.call(later.app, pathOf(url.toString())), 403, "LINK_EXPIRED");
  });

  it("a correctly signed link that lasts longer than LINK_TTL_SECONDS allows", async () => {
    const expires = Math.floor(Date.now() / 1000) + TTL + 3600;
    const sig = await createLinkSigner(SECRET).sign({ ...claim(), expires });
    await expect403(variant((u) => (u.searchParams.set("expires", String(expires)), u.searchParams.set("sig", sig))), "LINK_INVALID");
  });

  it("the untouched link still downloads", async () => {
    const d = await fetchBytes(w.app, pathOf(url.toString()));
    expect(d.status).toBe(200);
    expect(sha256(d.body)).toBe(sha256(object));
  });
});

describe("several databases (BACKUP_SOURCES): the link names its database", () => {
  it("a link of the second database downloads it; the same link with the first database's name → 403", async () => {
    const second = await h.wire("dl2", { env: { LINK_MODE: "worker", LINK_SECRET: SECRET } });
    const backup = await h.call(second.app, "/backups", { method: "POST", ...h.bearer() });
    expect(backup.status, backup.text).toBe(201);
    const app = createApp({ services: [w.service, second.service], logger: h.logger, apiKey: h.apiKey, ...downloadsOf(second.config) });
    const link = await h.call(app, `/backups/${backup.json.file}/link?name=dl2`, h.bearer());
    expect(link.status, link.text).toBe(200);
    const url = new URL(link.json.url);
    expect(url.searchParams.get("name")).toBe("dl2");
    const d = await fetchBytes(app, pathOf(url.toString()));
    expect(d.status).toBe(200);
    const r = await h.s3.client.send(new GetObjectCommand({ Bucket: h.s3.bucket, Key: backup.json.key }));
    expect(sha256(d.body)).toBe(sha256(new Uint8Array(await r.Body!.transformToByteArray())));
    url.searchParams.set("name", "dl");
    expectErrorShape(await h.call(app, pathOf(url.toString())), 403, "LINK_INVALID");
  });
});

describe("without LINK_MODE/LINK_SECRET", () => {
  it("links are presigned by the S3 store (its default) and /download is off (403 DOWNLOADS_DISABLED)", async () => {
    const plain = await h.wire("dl");
    expect(plain.service.linkMode).toBe("presigned");
    const a = await linkOf(plain, files[0]!);
    expect(a.json.url).toMatch(/X-Amz-Signature=/);
    const d = await h.call(plain.app, pathOf((await linkOf(w, files[0]!)).json.url));
    expectErrorShape(d, 403, "DOWNLOADS_DISABLED");
    expect(d.json.error.message).toContain("LINK_SECRET");
  });

  it("LINK_MODE=presigned with LINK_SECRET set hands out presigned links and still serves /download links made before", async () => {
    const both = await h.wire("dl", { env: { LINK_MODE: "presigned", LINK_SECRET: SECRET } });
    expect((await linkOf(both, files[0]!)).json.url).toMatch(/X-Amz-Signature=/);
    const d = await fetchBytes(both.app, pathOf((await linkOf(w, files[0]!)).json.url));
    expect(d.status).toBe(200);
    expect(sha256(d.body)).toBe(sha256(object));
  });

  it("a deleted backup's link → 404 BACKUP_NOT_FOUND", async () => {
    const extra = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(extra.status, extra.text).toBe(201);
    const path = pathOf((await linkOf(w, extra.json.file)).json.url);
    // Removed as DELETE /backups or retention would, after the link was made.
    await h.s3.client.send(new DeleteObjectCommand({ Bucket: h.s3.bucket, Key: extra.json.key }));
    expectErrorShape(await h.call(w.app, path), 404, "BACKUP_NOT_FOUND");
  });
});

describe("curl against the app on a Node HTTP server", () => {
  let server: ServerType;
  let base: string;
  let url: string;

  beforeAll(async () => {
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: w.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Asked over HTTP: the link takes the origin of this request.
    const res = await fetch(`${base}/backups/${files[0]}/link`, { headers: { Authorization: `Bearer ${h.apiKey}` } });
    expect(res.status).toBe(200);
    url = ((await res.json()) as { url: string }).url;
    expect(url.startsWith(`${base}/download/`)).toBe(true);
  });
  afterAll(async () => {
    (server as Server).closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("downloads the exact bytes with Content-Length from the server", async () => {
    const out = join(h.dir, "whole.gz");
    const { stdout } = await run("curl", ["-sS", "-f", "-D", "-", "-o", out, url]);
    expect(stdout).toMatch(new RegExp(`^content-length: ${object.length}\\r?$`, "mi"));
    expect(stdout).not.toMatch(/^transfer-encoding:/im);
    expect(sha256(await readFile(out))).toBe(sha256(object));
  });

  it("curl -r fetches a byte range (206)", async () => {
    const out = join(h.dir, "range.bin");
    const { stdout } = await run("curl", ["-sS", "-f", "-r", "100-4195", "-o", out, "-w", "%{http_code}", url]);
    expect(stdout).toBe("206");
    expect(Buffer.from(await readFile(out)).equals(Buffer.from(object.subarray(100, 4196)))).toBe(true);
  });

  it("curl -C - resumes a cut download: the file ends up byte-identical to the object", async () => {
    const out = join(h.dir, "resumed.gz");
    const cut = Math.floor(object.length / 3);
    // What a download cut after `cut` bytes leaves behind.
    await writeFile(out, object.subarray(0, cut));
    const { stdout, stderr } = await run("curl", ["-sS", "-f", "-C", "-", "-o", out, "-w", "%{http_code} %{size_download}", url]);
    expect(stderr).toBe("");
    expect(stdout).toBe(`206 ${object.length - cut}`);
    expect(sha256(await readFile(out))).toBe(sha256(object));
  });

  it("curl -C - on a complete file asks for nothing more (416) and leaves it intact", async () => {
    const out = join(h.dir, "complete.gz");
    await writeFile(out, object);
    // curl treats 416 on a resume as "already complete" and exits 0.
    await run("curl", ["-sS", "-C", "-", "-o", out, url]);
    expect(sha256(await readFile(out))).toBe(sha256(object));
  });
});
