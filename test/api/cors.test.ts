/**
 * CORS is off unless CORS_ORIGINS is set; then only the listed origins get CORS headers,
 * preflights answer without a key, and real requests still need the key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness, type Wired } from "./harness.js";

const h = new Harness();
let off: Wired;
let listed: Wired;
let any: Wired;

beforeAll(async () => {
  await h.start();
  off = await h.wire("cors-off");
  listed = await h.wire("cors-listed", { env: { CORS_ORIGINS: "https://admin.example.com, http://127.0.0.1:5173" } });
  any = await h.wire("cors-any", { env: { CORS_ORIGINS: "*" } });
});
afterAll(() => h.close());

const VALID_FILE_OF_LISTED = "cors-listed-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz";

const preflight = (origin: string, method = "GET") => ({
  method: "OPTIONS",
  headers: { Origin: origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization" },
});

describe("CORS", () => {
  it("by default no response carries CORS headers, preflight included", async () => {
    const pre = await h.call(off.app, "/status", preflight("https://admin.example.com"));
    expect(pre.res.headers.get("access-control-allow-origin")).toBeNull();
    expect(pre.res.headers.get("access-control-allow-methods")).toBeNull();
    const get = await h.call(off.app, "/status", { headers: { Origin: "https://admin.example.com", Authorization: `Bearer ${h.apiKey}` } });
    expect(get.status).toBe(200);
    expect(get.res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("a listed origin gets a preflight answer without a key, and its requests still need the key", async () => {
    const pre = await h.call(listed.app, "/backups", preflight("https://admin.example.com", "POST"));
    expect(pre.status).toBe(204);
    expect(pre.res.headers.get("access-control-allow-origin")).toBe("https://admin.example.com");
    expect(pre.res.headers.get("access-control-allow-methods")).toContain("POST");
    expect((pre.res.headers.get("access-control-allow-headers") ?? "").toLowerCase()).toContain("authorization");
    expect(pre.res.headers.get("access-control-allow-credentials")).toBeNull();
    // DELETE /backups/{file} from an admin page: allowed by the preflight, still needs the key.
    const preDelete = await h.call(listed.app, `/backups/${VALID_FILE_OF_LISTED}`, preflight("https://admin.example.com", "DELETE"));
    expect(preDelete.status).toBe(204);
    expect(preDelete.res.headers.get("access-control-allow-methods")).toContain("DELETE");
    const deleteNoKey = await h.call(listed.app, `/backups/${VALID_FILE_OF_LISTED}`, { method: "DELETE", headers: { Origin: "https://admin.example.com" } });
    expect(deleteNoKey.status).toBe(401);

    const noKey = await h.call(listed.app, "/status", { headers: { Origin: "http://127.0.0.1:5173" } });
    expect(noKey.status).toBe(401);
    expect(noKey.res.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:5173");
    const ok = await h.call(listed.app, "/status", { headers: { Origin: "http://127.0.0.1:5173", "X-API-Key": h.apiKey } });
    expect(ok.status).toBe(200);
    expect(ok.res.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:5173");
  });

  it("an origin that is not listed — including look-alikes — gets no Allow-Origin", async () => {
    for (const origin of ["https://evil.example.com", "https://admin.example.com.evil.net", "http://admin.example.com", "https://admin.example.com:8443", "null"]) {
      const pre = await h.call(listed.app, "/backups", preflight(origin));
      expect(pre.res.headers.get("access-control-allow-origin"), origin).toBeNull();
      const get = await h.call(listed.app, "/status", { headers: { Origin: origin, Authorization: `Bearer ${h.apiKey}` } });
      expect(get.res.headers.get("access-control-allow-origin"), origin).toBeNull();
    }
  });

  it("CORS_ORIGINS=* allows any origin, still without credentials and still behind the key", async () => {
    const pre = await h.call(any.app, "/backups", preflight("https://anything.example"));
    expect(pre.res.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.res.headers.get("access-control-allow-credentials")).toBeNull();
    const noKey = await h.call(any.app, "/backups", { headers: { Origin: "https://anything.example" } });
    expect(noKey.status).toBe(401);
  });
});
