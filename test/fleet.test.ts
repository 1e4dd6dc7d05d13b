/**
 * BACKUP_SOURCES: several databases in one deployment against the real store. Each has its
 * own keys, retention, lease and status; one failing source does not stop the others; the
 * API and the CLI pick a database by name, and a link downloads exactly that database.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createApp } from "../src/api/app.js";
import { parseConfig } from "../src/config.js";
import { createFleet, type Fleet } from "../src/fleet.js";
import { jsonLogger } from "../src/log.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { cli } from "./helpers/cli.js";
import { dumpTables, sha256, writeDatabase } from "./helpers/db.js";
import { capturedLines, registerSecret } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const API_KEY = registerSecret("API_KEY", "fleet-test-api-key-0123456789");
let s3: TestStore;
let dir: string;
const logLines = capturedLines("fleet log");
const images: Record<string, Uint8Array> = {};
let sources: string;

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-fleet-"));
  images.app = await writeDatabase(join(dir, "app.db"), { rows: 120 });
  images.jobs = await writeDatabase(join(dir, "jobs.db"), { rows: 40 });
  sources = JSON.stringify([
    { name: "app", source: join(dir, "app.db") },
    { name: "gone", source: join(dir, "missing.db") },
    { name: "jobs", source: join(dir, "jobs.db"), maxCount: 1 },
  ]);
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

async function fleet(extra: Record<string, string> = {}): Promise<Fleet> {
  const config = parseConfig(s3.env({ BACKUP_SOURCES: sources, API_KEY, MAX_COUNT: "5", ...extra }), { maxBytes: NODE_MAX_BYTES });
  const runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line) }));
  return createFleet({ config, runtime, store: createS3Store(config.s3), source: (db) => createSource(db.source, { files: nodeFiles }) }, { holder: "test", lockSettleMs: 100 });
}

const backupsOf = async (name: string) => (await s3.keys(`backups/${name}/`)).filter((k) => /\.sqlite\.gz$/.test(k));

describe("several databases", () => {
  it("a scheduled run backs up each in turn; the failing one does not stop the others", async () => {
    const f = await fleet();
    expect(f.names).toEqual(["app", "gone", "jobs"]);
    for (let round = 0; round < 2; round++) {
      const runs = await f.scheduledAll(new Date());
      expect(runs.map((r) => [r.name, r.ok])).toEqual([["app", true], ["gone", false], ["jobs", true]]);
      const gone = runs[1]!;
      if (!gone.ok) expect(gone.error.code).toBe("SOURCE_NOT_FOUND");
    }
    // Own keys and own retention: app keeps 2 (MAX_COUNT 5), jobs keeps 1 (its maxCount).
    expect(await backupsOf("app")).toHaveLength(2);
    expect(await backupsOf("jobs")).toHaveLength(1);
    expect(await s3.keys("backups/gone/")).toEqual([]);
    // Own status each.
    const [app, gone, jobs] = f.services;
    expect(app!.status()).toMatchObject({ name: "app", lastRun: { ok: true } });
    expect(gone!.status()).toMatchObject({ name: "gone", lastRun: { ok: false, error: { code: "SOURCE_NOT_FOUND" } } });
    expect(jobs!.status()).toMatchObject({ name: "jobs", lastRun: { ok: true } });
    // One metrics registry, one series per name.
    const text = f.metrics.render();
    expect(text).toMatch(/^sqlite_backup_runs_total\{name="app",result="success"\} 2$/m);
    expect(text).toMatch(/^sqlite_backup_runs_total\{name="gone",result="failure"\} 2$/m);
    expect(text).toMatch(/^sqlite_backup_runs_total\{name="jobs",result="success"\} 2$/m);
  });

  it("each database has its own lease: one running does not block another", async () => {
    const f = await fleet();
    const [app, , jobs] = f.services;
    const [a, j] = await Promise.all([app!.backup(), jobs!.backup()]);
    expect(a.name).toBe("app");
    expect(j.name).toBe("jobs");
  });

  it("the API picks a database with ?name=; a link downloads exactly that database", async () => {
    const f = await fleet();
    const app = createApp({ services: f.services, logger: jsonLogger({ write: (l) => logLines.push(l) }), apiKey: API_KEY });
    const auth = { headers: { Authorization: `Bearer ${API_KEY}` } };

    const post = await app.request("/backups?name=jobs", { method: "POST", ...auth });
    expect(post.status).toBe(201);
    const manifest = (await post.json()) as { name: string; sha256: string; file: string };
    expect(manifest).toMatchObject({ name: "jobs", sha256: sha256(images.jobs!) });
    expect(post.headers.get("location")).toBe(`/backups/${manifest.file}/link?name=jobs`);

    for (const name of ["app", "jobs"]) {
      const link = await app.request(`/backups/latest/link?name=${name}`, auth);
      expect(link.status).toBe(200);
      const { url } = (await link.json()) as { url: string };
      const image = new Uint8Array(gunzipSync(new Uint8Array(await (await fetch(url)).arrayBuffer())));
      expect(sha256(image)).toBe(sha256(images[name]!));
      expect(await dumpTables(image)).toEqual(await dumpTables(images[name]!));
    }

    const list = await app.request("/backups?name=app", auth);
    expect(((await list.json()) as { backups: { key: string }[] }).backups.every((b) => b.key.startsWith("backups/app/"))).toBe(true);

    const statusAll = (await (await app.request("/status", auth)).json()) as { databases: { name: string }[] };
    expect(statusAll.databases.map((d) => d.name)).toEqual(["app", "gone", "jobs"]);
    const statusOne = (await (await app.request("/status?name=gone", auth)).json()) as { name: string };
    expect(statusOne.name).toBe("gone");
  });

  it("without ?name= the API asks for one; an unknown name is 404; a hostile name is not echoed", async () => {
    const f = await fleet();
    const app = createApp({ services: f.services, logger: jsonLogger({ write: (l) => logLines.push(l) }), apiKey: API_KEY });
    const auth = { headers: { Authorization: `Bearer ${API_KEY}` } };
    for (const [method, path] of [["GET", "/backups"], ["GET", "/backups/latest/link"], ["POST", "/backups"]] as const) {
      const r = await app.request(path, { method, ...auth });
      expect(r.status, path).toBe(400);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("NAME_REQUIRED");
      expect(body.error.message).toContain("app, gone, jobs");
    }
    const unknown = await app.request("/backups?name=nope", auth);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("UNKNOWN_NAME");
    const hostile = await app.request(`/backups?name=${encodeURIComponent("<script>x</script>")}`, auth);
    expect(hostile.status).toBe(404);
    expect(await hostile.text()).not.toContain("<script>");
    // The {file} of another database's name is rejected before any store call.
    const other = await app.request("/backups/app-2026-11-23T10-42-36-123Z-9f3a1c.sqlite.gz/link?name=jobs", auth);
    expect(other.status).toBe(400);
  });

  it("the CLI backs up every database (exit 1: one failed) and acts on one with --name", async () => {
    const env = s3.env({ BACKUP_SOURCES: sources, MAX_COUNT: "5" });
    const all = await cli(["backup"], env);
    expect(all.code).toBe(1);
    const { runs } = JSON.parse(all.stdout) as { runs: { name: string; ok: boolean; error?: { code: string } }[] };
    expect(runs.map((r) => [r.name, r.ok])).toEqual([["app", true], ["gone", false], ["jobs", true]]);
    expect(runs[1]!.error?.code).toBe("SOURCE_NOT_FOUND");
    expect(all.stderr).toMatch(/error \[SOURCE_NOT_FOUND\].*\(database "gone"\)/);

    const one = await cli(["backup", "--name", "jobs"], env);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ name: "jobs", sha256: sha256(images.jobs!) });

    const restored = join(dir, "restored-jobs.db");
    const restore = await cli(["restore", "latest", "--name", "jobs", "--to", restored], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toContain("backups/jobs/");

    const ambiguous = await cli(["list"], env);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/NAME_REQUIRED.*--name/);
  });
});
