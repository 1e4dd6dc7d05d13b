/**
 * GET /openapi.json: generated from the route definitions, valid OpenAPI 3, covering every
 * route with its methods, security declared and applied, no secret inside.
 */
import SwaggerParser from "@apidevtools/swagger-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness, type Wired } from "./harness.js";

const h = new Harness();
let w: Wired;
let doc: any;

beforeAll(async () => {
  await h.start();
  w = await h.wire("docs");
  const a = await h.call(w.app, "/openapi.json");
  expect(a.status).toBe(200);
  expect(a.res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
  doc = a.json;
});
afterAll(() => h.close());

const PROTECTED = new Set(["post /backups", "get /backups", "delete /backups/{file}", "get /backups/latest/link", "get /backups/{file}/link", "get /status", "get /metrics"]);
const PUBLIC = new Set(["get /health", "get /openapi.json", "get /download/{file}"]);

describe("GET /openapi.json", () => {
  it("validates as OpenAPI 3 with swagger-parser", async () => {
    expect(doc.openapi).toMatch(/^3\.0\.\d$/);
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeTruthy();
  });

  it("covers exactly the routes of the contract, with their methods", () => {
    const operations = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) => Object.keys(item).map((m) => `${m} ${path}`));
    expect(new Set(operations)).toEqual(new Set([...PROTECTED, ...PUBLIC]));
  });

  it("declares bearer and X-API-Key schemes and applies them (either one) to the protected routes only", () => {
    expect(doc.components.securitySchemes).toEqual({
      bearerAuth: expect.objectContaining({ type: "http", scheme: "bearer" }),
      apiKeyHeader: expect.objectContaining({ type: "apiKey", in: "header", name: "X-API-Key" }),
    });
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        const id = `${method} ${path}`;
        if (PROTECTED.has(id)) {
          expect(op.security, id).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
          expect(Object.keys(op.responses), id).toEqual(expect.arrayContaining(["401", "403"]));
        } else {
          expect(op.security, id).toBeUndefined();
        }
      }
    }
    expect(doc.security).toBeUndefined();
  });

  it("documents the responses the routes give", () => {
    const post = doc.paths["/backups"].post;
    expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(["201", "409", "401", "403", "413", "422"]));
    expect(post.responses["422"].description).toMatch(/SQLITE_CORRUPT.*CHECK.*structure/);
    expect(post.responses["201"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Manifest" });
    for (const path of ["/backups/latest/link", "/backups/{file}/link"]) {
      const get = doc.paths[path].get;
      expect(Object.keys(get.responses), path).toEqual(expect.arrayContaining(["200", "302", "400", "404", "401"]));
      expect(get.parameters.find((p: any) => p.name === "redirect")).toMatchObject({ in: "query", required: false });
    }
    const fileParam = doc.paths["/backups/{file}/link"].get.parameters.find((p: any) => p.name === "file");
    expect(fileParam).toMatchObject({ in: "path", required: true, schema: { type: "string" } });
    expect(new RegExp(fileParam.schema.pattern).test("docs-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz")).toBe(true);
    expect(new RegExp(fileParam.schema.pattern).test("../etc/passwd")).toBe(false);
    expect(doc.components.schemas.Error.properties.error.required).toEqual(["code", "message"]);
    expect(Object.keys(doc.components.schemas.Manifest.properties)).toEqual(
      expect.arrayContaining(["key", "bytes", "gzipBytes", "sha256", "pageCount", "durationMs", "pruned"]),
    );
    expect(Object.keys(doc.components.schemas.Link.properties).sort()).toEqual(["expiresAt", "key", "size", "url"]);
  });

  it("contains no secret and is the same document on every request", async () => {
    const again = await h.call(w.app, "/openapi.json");
    expect(again.json).toEqual(doc);
    h.assertNoSecrets();
    const text = JSON.stringify(doc);
    expect(text).not.toContain(h.apiKey);
    expect(text).not.toContain(h.s3.endpoint);
    expect(text).not.toContain(h.s3.bucket);
  });
});
