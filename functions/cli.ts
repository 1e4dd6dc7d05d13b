/**
 * Command line: `npm run cli -- <command>`. Results on stdout, JSON logs on stderr,
 * errors as one line on stderr and a non-zero exit.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { resolveBackup } from "../src/catalog.js";
import { configFor, type Config } from "../src/config.js";
import { parseIdentityFile } from "../src/encrypt.js";
import { BackupError } from "../src/errors.js";
import { redact } from "../src/log.js";
import { restoreBackup } from "../src/restore.js";
import type { Fleet } from "../src/fleet.js";
import { verifyBackup } from "../src/verify.js";
import { createNodeContext } from "./node-context.js";
import { nodeRestoreFiles } from "./node-restore-files.js";
import { startServer } from "./node-server.js";

const USAGE = `usage: npm run cli -- <command>
  backup                 back up BACKUP_SOURCE now; prints the manifest as JSON (with
                         BACKUP_SOURCES: every database in turn, {"runs":[…]}; exit 1 if any failed)
  list [--json]          list this name's backups, newest first
  link [file|latest]     print a signed download link (default: latest)
  verify [file|latest] [--json]
                         download, gunzip, compare sha256 and size with the metadata and run
                         the structural check on the pages as they stream (default: latest);
                         exit 1 if anything is wrong
  restore [file|latest] --to PATH [--force | --if-missing] [--json]
                         restore atomically to PATH (temp file, verified, renamed over PATH);
                         --force replaces an existing PATH, --if-missing keeps it and exits 0
  (verify and restore of an encrypted .sqlite.gz.age backup need AGE_IDENTITY or AGE_IDENTITY_FILE)
  serve                  run the HTTP API on HOST:PORT and back up on SCHEDULE
  --name NAME            with BACKUP_SOURCES: the database to act on (backup: only this one;
                         list, link, verify and restore need it when there are several)
configuration comes from the environment; see README.md`;

const COMMANDS = ["backup", "list", "link", "verify", "restore", "serve"];

function usageError(message: string): number {
  process.stderr.write(`error: ${message} (--help for usage)\n`);
  return 2;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      to: { type: "string" },
      force: { type: "boolean", default: false },
      "if-missing": { type: "boolean", default: false },
      name: { type: "string" },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  if (!COMMANDS.includes(command)) {
    process.stderr.write(`error: unknown command "${command}" (commands: ${COMMANDS.join(", ")}; --help for usage)\n`);
    return 2;
  }
  if (command !== "restore" && (values.to !== undefined || values.force || values["if-missing"])) {
    return usageError(`--to, --force and --if-missing belong to restore, not ${command}`);
  }
  if ((command === "verify" || command === "restore" || command === "link") && rest.length > 1) {
    return usageError(`${command} takes one backup (a file name or "latest"), got ${rest.length}`);
  }
  if (command === "restore") {
    if (values.to === undefined || values.to.trim() === "") return usageError("restore needs --to PATH (the database file to create or replace)");
    if (values.force && values["if-missing"]) return usageError("--force and --if-missing contradict each other: choose one");
  }
  if (command === "serve") {
    const server = await startServer(env);
    process.stderr.write(`serving on ${server.url}; Ctrl-C to stop\n`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await server.stop();
    return 0;
  }
  const ctx = await createNodeContext(env);
  if (command === "backup" && values.name === undefined && ctx.fleet.names.length > 1) {
    try {
      return await backupAll(ctx.fleet);
    } finally {
      await ctx.notifier?.idle();
    }
  }
  // The one database this command is about (--name, or the only one), and its configuration.
  const service = ctx.fleet.pick(values.name);
  const config = configFor(ctx.config, ctx.config.databases.find((d) => d.name === service.name)!);
  switch (command) {
    case "backup": {
      try {
        const manifest = await service.backup();
        process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
        return manifest.pruneError ? 3 : 0;
      } finally {
        // The alert of this run (success or failure) goes out before the process exits; bounded.
        await ctx.notifier?.idle();
      }
    }
    case "list": {
      const backups = await service.list();
      if (values.json) process.stdout.write(`${JSON.stringify({ backups }, null, 2)}\n`);
      else if (backups.length === 0) process.stderr.write(`no backups of "${config.name}" in ${ctx.store.description}\n`);
      else for (const b of backups) process.stdout.write(`${b.lastModified}  ${String(b.size).padStart(12)}  ${b.file}\n`);
      return 0;
    }
    case "link": {
      const link = await service.link(rest[0] ?? "latest");
      process.stdout.write(`${link.url}\n`);
      return 0;
    }
    case "verify": {
      const identities = await ageIdentities(config);
      const found = await resolveBackup(ctx.store, config, rest[0] ?? "latest");
      const report = await verifyBackup(ctx.store, ctx.runtime, found.key, { maxBytes: config.maxBytes, identities });
      if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(
          `ok ${report.key}${report.encrypted ? " (age-encrypted, decrypted)" : ""}: ${report.bytes} bytes, sha256 ${report.sha256} matches, ${report.pageCount} pages of ${report.pageSize} bytes, ${report.check === "structure" ? "structural check" : "integrity_check"} ok\n`,
        );
      }
      return 0;
    }
    case "restore": {
      const identities = await ageIdentities(config);
      const result = await restoreBackup(
        { config, runtime: ctx.runtime, store: ctx.store, files: nodeRestoreFiles, identities },
        { which: rest[0] ?? "latest", target: resolve(values.to ?? ""), force: values.force, ifMissing: values["if-missing"] },
      );
      if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (!result.restored) process.stdout.write(`${result.target} exists; nothing restored\n`);
      else {
        const replaced = result.replaced ? " (replaced the existing file)" : "";
        process.stdout.write(`restored ${result.key} (${result.bytes} bytes, sha256 ${result.sha256}) to ${result.target}${replaced}\n`);
      }
      return 0;
    }
    default:
      return 2;
  }
}

/**
 * `backup` with several databases: each in turn (one failing does not stop the others), one
 * JSON document with every outcome; exit 1 if any failed, 3 if only pruning did.
 */
async function backupAll(fleet: Fleet): Promise<number> {
  const runs = await fleet.runAll((service) => service.backup());
  for (const r of runs) if (!r.ok) process.stderr.write(`${describeError(r.error)} (database "${r.name}")\n`);
  const shown = runs.map((r) => (r.ok ? { name: r.name, ok: true, manifest: r.result } : { name: r.name, ok: false, error: { code: r.error.code, message: r.error.message } }));
  process.stdout.write(`${JSON.stringify({ runs: shown }, null, 2)}\n`);
  return runs.some((r) => !r.ok) ? 1 : runs.some((r) => r.ok && r.result.pruneError) ? 3 : 0;
}

/**
 * AGE_IDENTITY, or the identities in the file AGE_IDENTITY_FILE names (read here: src/ reads
 * no files). Errors name the file, never its content.
 */
export async function ageIdentities(config: Pick<Config, "ageIdentity" | "ageIdentityFile">): Promise<string[]> {
  if (config.ageIdentity) return [config.ageIdentity];
  const path = config.ageIdentityFile;
  if (!path) return [];
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this user" : code === "EISDIR" ? "is a directory" : `cannot be read (${String(code ?? err)})`;
    throw new BackupError("CONFIG_INVALID", `AGE_IDENTITY_FILE ${path} ${why}.`, 400, { cause: err });
  }
  return parseIdentityFile(text, path);
}

export function describeError(err: unknown): string {
  if (err instanceof BackupError) return `error [${err.code}]: ${err.message}`;
  if (err instanceof Error && "code" in err && String((err as { code: unknown }).code).startsWith("ERR_PARSE_ARGS")) return `error: ${err.message}`;
  return `error: ${err instanceof Error ? err.message : String(err)}`;
}

// Run when executed directly (not when imported by tests).
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${redact(describeError(err), [process.env.S3_SECRET_ACCESS_KEY ?? "", process.env.API_KEY ?? "", process.env.AGE_IDENTITY ?? ""])}\n`);
      process.exit(1);
    },
  );
}
