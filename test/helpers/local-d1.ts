/**
 * Real local D1 databases through the real wrangler (`d1 execute --local`, `d1 export
 * --local`), each in a temp project of its own (its own wrangler.toml and .wrangler/ state;
 * the repository's wrangler.toml is never touched). Wrangler starts slowly (~2-4 s): callers
 * make one database per test file. The database's own SQLite file (Miniflare's D1 storage)
 * is returned too, to compare rows with what a backup holds.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const WRANGLER = resolve("node_modules/.bin/wrangler");

export interface LocalD1 {
  dir: string;
  name: string;
  /** Run a SQL file with `wrangler d1 execute NAME --local --file`. */
  execute(sqlFile: string): Promise<void>;
  /** `wrangler d1 export NAME --local --output …`: the dump D1 makes. */
  exportSql(): Promise<Uint8Array>;
  /** The SQLite file Miniflare keeps the database in. */
  sqliteFile(): Promise<string>;
}

export async function localD1(name = "src"): Promise<LocalD1> {
  const dir = await mkdtemp(join(tmpdir(), `seb-d1-${name}-`));
  await writeFile(
    join(dir, "wrangler.toml"),
    `name = "seb-d1-test"\ncompatibility_date = "2025-01-01"\n\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "${name}"\ndatabase_id = "00000000-0000-4000-8000-000000000001"\n`,
  );
  const wrangler = async (args: string[]) => {
    try {
      await run(WRANGLER, args, { cwd: dir, env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", CI: "1" }, maxBuffer: 64 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`wrangler ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
    }
  };
  return {
    dir,
    name,
    execute: (sqlFile) => wrangler(["d1", "execute", name, "--local", "--yes", "--file", sqlFile]),
    async exportSql() {
      const out = join(dir, "export.sql");
      await wrangler(["d1", "export", name, "--local", "--output", out]);
      return new Uint8Array(await readFile(out));
    },
    async sqliteFile() {
      const at = join(dir, ".wrangler", "state", "v3", "d1", "miniflare-D1DatabaseObject");
      const files = (await readdir(at)).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
      if (files.length !== 1) throw new Error(`expected one D1 database file in ${at}, found ${files.join(", ")}`);
      return join(at, files[0]!);
    },
  };
}
