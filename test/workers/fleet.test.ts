/**
 * BACKUP_SOURCES in workerd: one cron invocation backs up every database in turn; a source
 * that fails marks the invocation failed but the others are still backed up, each under its
 * own name, and the API picks a database with ?name=.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDatabase } from "../helpers/db.js";
import { download, expectSameDatabase, serve, WorkerHarness, type TestWorker } from "./harness.js";

const h = new WorkerHarness();
let w: TestWorker;
let one: Uint8Array;
let three: Uint8Array;

beforeAll(async () => {
  [, one, three] = await Promise.all([h.start(), makeDatabase({ rows: 300 }), makeDatabase({ rows: 30 })]);
  const base = h.source.base;
  w = await h.worker("fleet", {
    env: {
      BACKUP_SOURCE: null,
      BACKUP_NAME: null,
      BACKUP_SOURCES: JSON.stringify([
        { name: "one", source: `${base}/src/one.sqlite` },
        { name: "two", source: `${base}/src/two.sqlite` },
        { name: "three", source: `${base}/src/three.sqlite`, maxCount: 1 },
      ]),
    },
  });
  h.source.set("/src/one.sqlite", serve.db(one));
  h.source.set("/src/two.sqlite", serve.status(500, "down"));
  h.source.set("/src/three.sqlite", serve.db(three));
});
afterAll(() => h.close());

describe("several databases on Workers", () => {
  it("one cron run: the failing source fails the invocation, the other two are backed up", async () => {
    const result = await w.scheduled();
    expect(result.outcome).toBe("exception");
    expect(await h.s3.keys("backups/one/")).toHaveLength(1);
    expect(await h.s3.keys("backups/two/")).toEqual([]);
    expect(await h.s3.keys("backups/three/")).toHaveLength(1);
    const status = await w.call("/status", { headers: h.auth() });
    expect(status.json.databases.map((d: { name: string; lastRun: { ok: boolean } }) => [d.name, d.lastRun.ok])).toEqual([
      ["one", true],
      ["two", false],
      ["three", true],
    ]);
  });

  it("?name= picks the database; its link downloads exactly it", async () => {
    for (const [name, db] of [["one", one], ["three", three]] as const) {
      const a = await w.call(`/backups/latest/link?name=${name}`, { headers: h.auth() });
      expect(a.status, a.text).toBe(200);
      const { bytes } = await download(a.json.url);
      await expectSameDatabase(bytes, db);
    }
    const missing = await w.call("/backups", { headers: h.auth() });
    expect(missing.status).toBe(400);
    expect(missing.json.error.code).toBe("NAME_REQUIRED");
  });
});
