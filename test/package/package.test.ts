/**
 * The package as a user gets it: `npm run build`, `npm pack`, and in an empty project
 * `npm init -y` + `npm install <tarball> --omit=dev` from the registry (production
 * dependencies only). Then, from that project: the `sqlite-edge-backup` command (--version,
 * --help, and a real backup, list, link and byte-identical restore against the in-process S3
 * server), a Node program using the library API, and a Worker importing
 * `sqlite-edge-backup/worker`, bundled by wrangler and run in workerd through Miniflare.
 *
 * Slow (one build, one install; ~1–2 min on 2 cores). Set PACKAGE_TEST_KEEP=1 to keep the
 * consumer project and print where it is.
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { sha256, writeDatabase } from "../helpers/db.js";
import { capture, registerEnvSecrets } from "../helpers/log-capture.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";

const REPO = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** PATH without the node_modules/.bin directories npm and vitest put in front (tsx, wrangler, …). */
const USER_PATH = (process.env.PATH ?? "")
  .split(":")
  .filter((dir) => !dir.includes("node_modules"))
  .join(":");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeout?: number }): Promise<Run> {
  return new Promise((done) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        // Only what a user's shell would have, plus the test's variables: nothing of the repository leaks in.
        env: { PATH: USER_PATH, HOME: process.env.HOME ?? "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", NO_COLOR: "1", ...(options.env ?? {}) },
        maxBuffer: 64 * 1024 * 1024,
        timeout: options.timeout ?? 120_000,
      },
      (err, stdout, stderr) => {
        capture(`package ${command} ${args.slice(0, 2).join(" ")} stdout`, stdout);
        capture(`package ${command} ${args.slice(0, 2).join(" ")} stderr`, stderr);
        done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

async function must(command: string, args: string[], options: Parameters<typeof run>[2]): Promise<Run> {
  const r = await run(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

let work: string;
let consumer: string;
let tarball: string;
let s3: TestStore;
let installSeconds = 0;

/** The command as a user types it in the project (npx finds the installed bin). */
const npx = (args: string[], env: Record<string, string> = {}) => {
  registerEnvSecrets(env);
  return run("npx", ["sqlite-edge-backup", ...args], { cwd: consumer, env });
};

// Each test starts several Node processes (npx, the command): minutes on a loaded 2-core machine.
const SLOW = 240_000;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "seb-package-"));
  consumer = join(work, "consumer");
  await mkdir(consumer);
  // prepack runs the type check and this build; `npm test` has type-checked already, so the
  // build runs alone and the pack skips scripts (prepare would only re-apply the dev patches).
  await must(process.execPath, ["scripts/build.mjs"], { cwd: REPO, timeout: 180_000 });
  const packed = await must("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], { cwd: REPO });
  const [info] = JSON.parse(packed.stdout) as { filename: string }[];
  tarball = join(work, info!.filename);
  await must("npm", ["init", "-y"], { cwd: consumer });
  const started = Date.now();
  // From the registry (the npm cache answers what it has), production dependencies only.
  await must("npm", ["install", tarball, "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: consumer, timeout: 240_000 });
  installSeconds = (Date.now() - started) / 1000;
  s3 = await startTestStore();
}, 400_000);

afterAll(async () => {
  await s3?.close();
  if (process.env.PACKAGE_TEST_KEEP) console.error(`package test: consumer project kept in ${consumer}`);
  else if (work) await rm(work, { recursive: true, force: true });
});

describe("the packed package, installed in an empty project", () => {
  it("holds dist/ and the docs and no sources, tests or dev tooling, and runs no install script", async () => {
    const installed = join(consumer, "node_modules", "sqlite-edge-backup");
    const manifest = JSON.parse(await readFile(join(installed, "package.json"), "utf8")) as { scripts?: Record<string, string>; private?: boolean };
    expect(manifest.private).toBeUndefined();
    for (const script of ["preinstall", "install", "postinstall"]) expect(manifest.scripts?.[script]).toBeUndefined();
    expect((await readdir(installed)).sort()).toEqual(["README.md", "dist", "docs", "package.json"]);
    // The README's links into docs/ work in the installed copy too (e.g. read with less or an editor).
    const readme = await readFile(join(installed, "README.md"), "utf8");
    const docLinks = [...new Set([...readme.matchAll(/\]\((docs\/[^)#\s]+)/g)].map((m) => m[1]!))];
    expect(docLinks).toEqual(expect.arrayContaining(["docs/configuration.md", "docs/http-api.md"]));
    for (const link of docLinks) expect(existsSync(join(installed, link)), link).toBe(true);
    expect(existsSync(join(installed, "dist/functions/lib/node.d.ts"))).toBe(true);
    expect(existsSync(join(installed, "dist/functions/lib/worker.d.ts"))).toBe(true);
    expect(existsSync(join(installed, "dist/functions/check-worker-thread.mjs"))).toBe(true);
    // Dev dependencies stayed out of the user's project.
    for (const dev of ["tsx", "patch-package", "@20minutes/s3rver", "typescript", "vitest", "wrangler", "miniflare"]) {
      expect(existsSync(join(consumer, "node_modules", dev)), dev).toBe(false);
    }
    const { size } = await stat(tarball);
    console.error(`package test: tarball ${(size / 1024).toFixed(0)} KiB, install ${installSeconds.toFixed(1)} s`);
  }, SLOW);

  it("npx sqlite-edge-backup --version, --help and <command> --help", async () => {
    const version = await npx(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    const help = await npx(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: sqlite-edge-backup <command>/);
    for (const command of ["backup", "list", "link", "verify", "restore", "serve"]) expect(help.stdout).toContain(`  ${command}`);
    const restoreHelp = await npx(["restore", "--help"]);
    expect(restoreHelp.code).toBe(0);
    expect(restoreHelp.stdout).toMatch(/^usage: sqlite-edge-backup restore .*--to PATH/);
    const unknown = await npx(["nonsense"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "nonsense"');
  }, SLOW);

  it("backs up, lists, links and restores a real database byte for byte", async () => {
    const db = join(work, "shop.db");
    const source = await writeDatabase(db, { rows: 500, targetBytes: 400_000 });
    const env = s3.env({ BACKUP_SOURCE: db });

    const backup = await npx(["backup"], env);
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = JSON.parse(backup.stdout) as { key: string; file: string; sha256: string };
    expect(manifest.sha256).toBe(sha256(source));

    const list = await npx(["list"], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(manifest.file);

    const link = await npx(["link", "latest"], env);
    expect(link.code, link.stderr).toBe(0);
    const response = await fetch(link.stdout.trim());
    expect(response.status).toBe(200);
    expect(sha256(new Uint8Array(gunzipSync(new Uint8Array(await response.arrayBuffer()))))).toBe(manifest.sha256);

    // verify loads sql.js's .wasm from the installed package (sql.js finds it beside itself).
    const verify = await npx(["verify"], env);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok backups\/shop\//);

    const target = join(work, "restored.db");
    const restore = await npx(["restore", "latest", "--to", target], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(sha256(new Uint8Array(await readFile(target)))).toBe(sha256(source));
  }, SLOW);

  it("serve: the installed command serves the HTTP API until SIGTERM", async () => {
    const db = join(work, "serve.db");
    await writeDatabase(db, { rows: 50, targetBytes: 50_000 });
    // A free port: bind one, release it, hand it to the server.
    const probe = createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((done) => probe.close(() => done()));
    const env = s3.env({ BACKUP_SOURCE: db, PORT: String(port), HOST: "127.0.0.1", SCHEDULE: "0 3 1 1 *" });
    registerEnvSecrets(env);
    const child = spawn(join(consumer, "node_modules/.bin/sqlite-edge-backup"), ["serve"], {
      cwd: consumer,
      env: { PATH: USER_PATH, HOME: process.env.HOME ?? "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
    try {
      const deadline = Date.now() + 120_000;
      while (!stderr.includes("serving on") && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
      expect(stderr).toContain(`serving on http://127.0.0.1:${port}`);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      await health.arrayBuffer();
    } finally {
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      capture("package serve stderr", stderr);
    }
  }, SLOW);

  it("a Node program uses the library API with a settings object", async () => {
    const db = join(work, "lib.db");
    const source = await writeDatabase(db, { rows: 200, targetBytes: 200_000 });
    const settings = s3.env({ BACKUP_SOURCE: db, MAX_COUNT: "3" });
    registerEnvSecrets(settings);
    await writeFile(
      join(consumer, "program.mjs"),
      `import { backup, createBackupClient, list, link, restore, verify, BackupError, VERSION } from "sqlite-edge-backup";
const settings = JSON.parse(process.env.SETTINGS);
const out = { version: VERSION };
out.manifest = await backup({ ...settings, MAX_COUNT: 3 }, { logger: false });
out.listed = (await list(settings, { logger: false })).map((b) => b.file);
out.link = (await link(settings, "latest", { logger: false })).url;
out.verified = await verify(settings, undefined, { logger: false });
out.restored = await restore(settings, { to: process.env.TARGET }, { logger: false });
const client = await createBackupClient(settings, { logger: false });
out.clientList = (await client.list()).length;
await client.close();
try {
  await list({ ...settings, S3_BUKET: "x" });
} catch (err) {
  out.typo = { isBackupError: err instanceof BackupError, code: err.code, message: err.message };
}
try {
  await list({ ...settings, MAX_COUNT: "many" });
} catch (err) {
  out.invalid = { code: err.code, message: err.message };
}
console.log(JSON.stringify(out));
`,
    );
    const target = join(work, "lib-restored.db");
    const r = await run(process.execPath, ["program.mjs"], { cwd: consumer, env: { SETTINGS: JSON.stringify(settings), TARGET: target } });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      version: string;
      manifest: { file: string; sha256: string };
      listed: string[];
      link: string;
      verified: { sha256: string };
      restored: { restored: boolean; sha256: string };
      clientList: number;
      typo: { isBackupError: boolean; code: string; message: string };
      invalid: { code: string; message: string };
    };
    expect(out.version).toBe(VERSION);
    expect(out.manifest.sha256).toBe(sha256(source));
    expect(out.listed).toEqual([out.manifest.file]);
    expect(out.link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    expect(out.verified.sha256).toBe(out.manifest.sha256);
    expect(out.restored).toMatchObject({ restored: true, sha256: out.manifest.sha256 });
    expect(sha256(new Uint8Array(await readFile(target)))).toBe(sha256(source));
    expect(out.clientList).toBe(1);
    expect(out.typo).toMatchObject({ isBackupError: true, code: "CONFIG_INVALID" });
    expect(out.typo.message).toContain('"S3_BUKET" is not a configuration variable');
    expect(out.invalid.code).toBe("CONFIG_INVALID");
    expect(out.invalid.message).toContain("MAX_COUNT");
    // logger: false: the program wrote nothing on stderr.
    expect(r.stderr).toBe("");
  }, SLOW);

  it("the library's types check in a TypeScript consumer", async () => {
    await writeFile(
      join(consumer, "typed.ts"),
      `import { backup, createBackupClient, type BackupSettings, type Manifest } from "sqlite-edge-backup";
import { backupApp, backupHandlers, createBackupWorker, type BackupEnv } from "sqlite-edge-backup/worker";
const settings: BackupSettings = { BACKUP_SOURCE: "/data/app.db", S3_BUCKET: "backups", MAX_COUNT: 7 };
export const run = async (): Promise<Manifest> => backup(settings, { logger: false });
export const client = createBackupClient(settings);
const env: BackupEnv = { BACKUP_SOURCE: "https://example.com/db" };
export const handlers = backupHandlers(env);
export const app = backupApp;
export const worker = createBackupWorker();
// @ts-expect-error: not a setting
export const typo: BackupSettings = { S3_BUKET: "x" };
`,
    );
    const tsc = join(REPO, "node_modules/typescript/bin/tsc");
    const r = await run(
      process.execPath,
      [tsc, "--noEmit", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--lib", "es2023,dom", "--types", "node", "--typeRoots", join(REPO, "node_modules/@types"), "typed.ts"],
      { cwd: consumer },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, SLOW);

  it("a Worker importing sqlite-edge-backup/worker, bundled by wrangler, backs up in workerd", async () => {
    const db = await writeDatabase(join(work, "edge.db"), { rows: 300, targetBytes: 300_000 });
    const source: Server = createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/vnd.sqlite3", "Content-Length": db.length });
      res.end(db);
    });
    source.listen(0, "127.0.0.1");
    await once(source, "listening");
    const sourceUrl = `http://127.0.0.1:${(source.address() as AddressInfo).port}/edge.db`;
    await writeFile(
      join(consumer, "worker.mjs"),
      `import { Hono } from "hono";
import { backupApp, backupHandlers } from "sqlite-edge-backup/worker";

const app = new Hono();
app.get("/", (c) => c.text("my own app"));
app.route("/backup", backupApp);

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    await backupHandlers(env).scheduled(controller, ctx);
  },
};
`,
    );
    await writeFile(
      join(consumer, "wrangler.toml"),
      `name = "consumer"
main = "worker.mjs"
compatibility_date = "2026-04-20"

[alias]
"@aws-sdk/xml-builder" = "./node_modules/@aws-sdk/xml-builder/dist-cjs/index.js"
`,
    );
    const out = join(work, "bundle");
    await must(process.execPath, [join(REPO, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", out], {
      cwd: consumer,
      env: { WRANGLER_SEND_METRICS: "false", CI: "1", FORCE_COLOR: "0" },
      timeout: 180_000,
    });
    const apiKey = "package-test-api-key-0123456789";
    const bindings = s3.env({ BACKUP_SOURCE: sourceUrl, BACKUP_NAME: "edge", API_KEY: apiKey, S3_PREFIX: "backups/" });
    registerEnvSecrets(bindings);
    const mf = new Miniflare({
      scriptPath: join(out, "worker.js"),
      modulesRoot: out,
      modules: true,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
      compatibilityDate: "2026-04-20",
      bindings,
      handleStructuredLogs: ({ level, message }: { level: string; message: string }) => capture(`package workerd ${level}`, message),
    });
    try {
      const own = await mf.dispatchFetch("http://localhost/");
      expect(await own.text()).toBe("my own app");
      const health = await mf.dispatchFetch("http://localhost/backup/health");
      expect(health.status).toBe(200);
      await health.arrayBuffer();
      const auth = { Authorization: `Bearer ${apiKey}` };
      const denied = await mf.dispatchFetch("http://localhost/backup/backups", { method: "POST" });
      expect(denied.status).toBe(401);
      await denied.arrayBuffer();
      const posted = await mf.dispatchFetch("http://localhost/backup/backups", { method: "POST", headers: auth });
      const manifest = (await posted.json()) as { sha256: string; key: string };
      expect(posted.status, JSON.stringify(manifest)).toBe(201);
      expect(manifest.sha256).toBe(sha256(db));

      await (await mf.getWorker()).scheduled({ cron: "0 3 * * *", scheduledTime: new Date() });
      const listed = await mf.dispatchFetch("http://localhost/backup/backups", { headers: auth });
      const body = (await listed.json()) as { backups: { key: string }[] };
      expect(body.backups).toHaveLength(2);

      // What the Worker stored restores byte for byte with the installed command.
      const target = join(work, "edge-restored.db");
      const restore = await npx(["restore", "latest", "--to", target], s3.env({ BACKUP_SOURCE: sourceUrl, BACKUP_NAME: "edge" }));
      expect(restore.code, restore.stderr).toBe(0);
      expect(sha256(new Uint8Array(await readFile(target)))).toBe(sha256(db));
    } finally {
      await mf.dispose();
      source.closeAllConnections();
      source.close();
    }
  }, SLOW);
});
