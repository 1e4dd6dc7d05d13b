/**
 * Downloads served by the Worker (LINK_MODE=worker, LINK_SECRET) in workerd: the deployed
 * bundle hands out /download links of its own origin and streams the object from the real S3
 * server with Content-Length and single ranges; changed, foreign and expired links are refused
 * with 403. A link signed in Node (src/links.ts) is judged the same in workerd: one algorithm.
 */
import { randomBytes } from "node:crypto";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLinkSigner } from "../../src/links.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { registerSecret } from "../helpers/log-capture.js";
import { expectErrorShape } from "../api/harness.js";
import { serve, WorkerHarness, type TestWorker } from "./harness.js";

const h = new WorkerHarness();
const SECRET = registerSecret("LINK_SECRET", `link-${randomBytes(24).toString("hex")}`);
let w: TestWorker;
let file: string;
let object: Uint8Array;
let url: URL;

async function get(path: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  const res = await w.mf.dispatchFetch(`http://localhost${path}`, { redirect: "manual", ...init });
  const body = new Uint8Array(await res.arrayBuffer());
  h.transcript.push(`${w.name}: ${res.status} ${init.method ?? "GET"} ${path}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}`);
  return { res, status: res.status, body };
}
const pathOf = (u: URL) => `${u.pathname}${u.search}`;

beforeAll(async () => {
  await h.start();
  h.secrets.push(SECRET);
  w = await h.worker("wdl", { env: { LINK_MODE: "worker", LINK_SECRET: SECRET } });
  h.source.set(w.sourcePath, serve.db(await makeDatabase({ rows: 500, targetBytes: 400 * 1024 })));
  const b = await w.backup();
  expect(b.status, b.text).toBe(201);
  file = b.json.file;
  const r = await h.s3.client.send(new GetObjectCommand({ Bucket: h.s3.bucket, Key: b.json.key }));
  object = new Uint8Array(await r.Body!.transformToByteArray());
  const link = await w.call(`/backups/${file}/link`, { headers: h.auth() });
  expect(link.status, link.text).toBe(200);
  url = new URL(link.json.url);
});
afterAll(async () => {
  h.assertNoSecrets();
  await h.close();
});

describe("the Worker's own download links", () => {
  it("GET /backups/{file}/link answers a /download URL of the Worker's origin", () => {
    expect(url.origin).toBe("http://localhost");
    expect(url.pathname).toBe(`/download/${file}`);
    expect(url.searchParams.get("name")).toBe("wdl");
    expect(url.searchParams.get("sig")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("the link downloads exactly the stored bytes, with Content-Length and Content-Disposition: attachment", async () => {
    const d = await get(pathOf(url));
    expect(d.status).toBe(200);
    expect(sha256(d.body)).toBe(sha256(object));
    expect(d.res.headers.get("content-length")).toBe(String(object.length));
    expect(d.res.headers.get("content-disposition")).toBe(`attachment; filename="${file}"`);
    expect(d.res.headers.get("accept-ranges")).toBe("bytes");
  });

  it("a byte range → 206 with exactly those bytes; a suffix range too; past the end → 416", async () => {
    const d = await get(pathOf(url), { headers: { Range: "bytes=1000-5095" } });
    expect(d.status).toBe(206);
    expect(Buffer.from(d.body).equals(Buffer.from(object.subarray(1000, 5096)))).toBe(true);
    expect(d.res.headers.get("content-range")).toBe(`bytes 1000-5095/${object.length}`);
    expect(d.res.headers.get("content-length")).toBe("4096");
    const tail = await get(pathOf(url), { headers: { Range: "bytes=-100" } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(tail.body).equals(Buffer.from(object.subarray(object.length - 100)))).toBe(true);
    const rest = await get(pathOf(url), { headers: { Range: `bytes=${object.length - 10}-` } });
    expect(Buffer.from(rest.body).equals(Buffer.from(object.subarray(object.length - 10)))).toBe(true);
    const past = await w.call(pathOf(url), { headers: { Range: `bytes=${object.length}-` } });
    expectErrorShape(past, 416, "RANGE_NOT_SATISFIABLE");
    expect(past.res.headers.get("content-range")).toBe(`bytes */${object.length}`);
  });

  it("HEAD answers the headers and no body", async () => {
    const d = await get(pathOf(url), { method: "HEAD" });
    expect(d.status).toBe(200);
    expect(d.body.length).toBe(0);
    expect(d.res.headers.get("content-length")).toBe(String(object.length));
  });

  it("a changed path, expiry, signature, name, key or method → 403 LINK_INVALID", async () => {
    const variant = (change: (u: URL) => void) => {
      const u = new URL(url);
      change(u);
      return pathOf(u);
    };
    const other = file.replace(/-[0-9a-f]{6}\.sqlite\.gz$/, "-000000.sqlite.gz");
    const expires = Number(url.searchParams.get("expires"));
    const foreign = await createLinkSigner(`other-${randomBytes(24).toString("hex")}`).sign({ method: "GET", file, name: "wdl", expires });
    const sig = url.searchParams.get("sig")!;
    for (const path of [
      variant((u) => (u.pathname = `/download/${other}`)),
      variant((u) => u.searchParams.set("expires", String(expires + 60))),
      variant((u) => u.searchParams.set("sig", `${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`)),
      variant((u) => u.searchParams.set("name", "other")),
      variant((u) => u.searchParams.set("sig", foreign)),
    ]) {
      expectErrorShape(await w.call(path), 403, "LINK_INVALID");
    }
    expectErrorShape(await w.call(pathOf(url), { method: "POST" }), 403, "LINK_INVALID");
    expectErrorShape(await w.call(pathOf(url), { method: "DELETE" }), 403, "LINK_INVALID");
  });

  it("a link signed in Node with LINK_SECRET is accepted, and refused once expired (LINK_EXPIRED)", async () => {
    const signer = createLinkSigner(SECRET);
    const fresh = Math.floor(Date.now() / 1000) + 60;
    const good = new URL(url);
    good.searchParams.set("expires", String(fresh));
    good.searchParams.set("sig", await signer.sign({ method: "GET", file, name: "wdl", expires: fresh }));
    expect((await get(pathOf(good))).status).toBe(200);
    const past = Math.floor(Date.now() / 1000) - 1;
    const old = new URL(url);
    old.searchParams.set("expires", String(past));
    old.searchParams.set("sig", await signer.sign({ method: "GET", file, name: "wdl", expires: past }));
    expectErrorShape(await w.call(pathOf(old)), 403, "LINK_EXPIRED");
  });

  it("LINK_MODE=worker without LINK_SECRET: every request answers CONFIG_INVALID naming LINK_SECRET, and no value", async () => {
    const bad = await h.worker("wdl-nosecret", { env: { LINK_MODE: "worker" } });
    const a = await bad.call("/health");
    expect(a.status).toBe(500);
    expect(a.json.error.code).toBe("CONFIG_INVALID");
    expect(a.json.error.message).toContain("LINK_SECRET is required with LINK_MODE=worker");
    await h.dispose(bad);
  });
});
