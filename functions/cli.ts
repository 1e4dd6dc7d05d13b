/**
 * Command line: `sqlite-edge-backup <command>` (the package's bin, functions/bin.ts) or
 * `npm run cli -- <command>` in this repository. Results on stdout, JSON logs on stderr,
 * errors as one line on stderr and a non-zero exit.
 *
 * Start-up: this module loads only node: built-ins and small pure modules; each command
 * imports what it needs when it runs (the AWS SDK, sql.js, age, hono), so `--help` and
 * `--version` cost little more than starting Node (bench/startup.ts measures it).
 */
import { parseArgs } from "node:util";
import type { ConfigFile } from "./config-file.js";
import { BackupError } from "../src/errors.js";
import { redact } from "../src/log.js";
import { VERSION } from "../src/version.js";
import type { Manifest } from "../src/backup.js";
import type { FleetRun } from "../src/fleet.js";
import type { BackupInfo } from "../src/backup-info.js";

export { ageIdentities } from "./age-identities.js";

const NAME_HELP = `  --name NAME            with BACKUP_SOURCES: the database to act on (backup: only this one;
                         the other commands need it when there are several)`;

const COMMAND_HELP: Record<string, string> = {
  backup: `usage: sqlite-edge-backup backup [--name NAME]
  Back up BACKUP_SOURCE now; prints the manifest as JSON. With BACKUP_SOURCES: every database
  in turn, {"runs":[…]}; exit 1 if any failed, 3 if only pruning failed.
${NAME_HELP}`,
  list: `usage: sqlite-edge-backup list [--json] [--name NAME]
  List this name's backups, newest first (time, size, file); --json for machines.
${NAME_HELP}`,
  link: `usage: sqlite-edge-backup link [file|latest] [--name NAME]
  Print a signed download link (valid LINK_TTL_SECONDS) to a backup (default: latest).
${NAME_HELP}`,
  verify: `usage: sqlite-edge-backup verify [file|latest] [--json] [--name NAME]
  Download, gunzip, compare sha256 and size with the metadata and run the structural check on
  the pages as they stream (default: latest); exit 1 if anything is wrong. An encrypted
  .sqlite.gz.age backup needs AGE_IDENTITY or AGE_IDENTITY_FILE.
${NAME_HELP}`,
  restore: `usage: sqlite-edge-backup restore [file|latest] --to PATH [--force | --if-missing] [--format sqlite|sql] [--json] [--name NAME]
  Restore atomically to PATH (temp file, verified, renamed over PATH; default: latest).
  --force        replace an existing PATH
  --if-missing   keep an existing PATH and exit 0
  --format sql   write SQL for \`wrangler d1 execute DB --file PATH\` instead of the database file
                 (recreates a D1 database from any backup; default: sqlite)
  An encrypted .sqlite.gz.age backup needs AGE_IDENTITY or AGE_IDENTITY_FILE.
${NAME_HELP}`,
  info: `usage: sqlite-edge-backup info [file|latest] [--json] [--verify] [--name NAME]
  What the bucket knows about one backup (default: latest), without downloading it: key, when
  it was made, sizes, sha256, page size and count, SQLite version, format and encryption,
  whether it is the newest, and "verified" (at-backup: its metadata is this tool's and the run
  that made it verified it before keeping it; no: the metadata is not this tool's). --verify
  downloads and proves it now, as verify does ("verified": "now"); --json for machines.
${NAME_HELP}`,
  delete: `usage: sqlite-edge-backup delete <file> [--yes] [--force] [--name NAME]
  Delete one backup of this name (the file name as list shows it). Asks for confirmation when
  stdin is a terminal; elsewhere it refuses unless --yes is given.
  --yes          do not ask
  --force        allow deleting the newest backup (refused otherwise, NEWEST_BACKUP)
${NAME_HELP}`,
  serve: `usage: sqlite-edge-backup serve
  Run the HTTP API on HOST:PORT (default 127.0.0.1:8787) and back up on SCHEDULE (UTC cron)
  until SIGINT/SIGTERM.`,
};

const USAGE = `usage: sqlite-edge-backup <command> [options]     (in a clone: npm run cli -- <command>)
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
                         --force replaces an existing PATH, --if-missing keeps it and exits 0;
                         --format sql writes SQL for wrangler d1 execute --file instead
  (verify and restore of an encrypted .sqlite.gz.age backup need AGE_IDENTITY or AGE_IDENTITY_FILE)
  info [file|latest] [--json] [--verify]
                         what the bucket knows about one backup (default: latest): key, time,
                         sizes, sha256, pages, SQLite version, encryption, verification
  delete <file> [--yes] [--force]
                         delete one backup (asks at a terminal; --yes elsewhere); the newest
                         only with --force
  serve                  run the HTTP API on HOST:PORT and back up on SCHEDULE
${NAME_HELP}
  --log-format json|pretty
                         stderr: JSON lines, or a progress line and a summary for a person
                         (default: pretty when stderr is a terminal, else json)
  --quiet, -q            log warnings and errors only
  --config FILE          settings from a JSON file (the variables' names, and "databases" for
                         BACKUP_SOURCES); the environment overrides it
  <command> --help       that command's usage
  --version              print the version
configuration comes from the environment (BACKUP_SOURCE, S3_ENDPOINT, S3_BUCKET,
S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, …) and --config FILE; see docs/configuration.md`;

const COMMANDS = ["backup", "list", "link", "verify", "restore", "info", "delete", "serve"];

function usageError(message: string): number {
  process.stderr.write(`error: ${message} (--help for usage)\n`);
  return 2;
}

/** The settings the last command ran with (the environment, and --config's file): what error output must not show. */
let runEnv: NodeJS.ProcessEnv = process.env;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      version: { type: "boolean", short: "v", default: false },
      to: { type: "string" },
      force: { type: "boolean", default: false },
      yes: { type: "boolean", short: "y", default: false },
      verify: { type: "boolean", default: false },
      "if-missing": { type: "boolean", default: false },
      format: { type: "string" },
      name: { type: "string" },
      config: { type: "string" },
      "log-format": { type: "string" },
      quiet: { type: "boolean", short: "q", default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (command && values.help && COMMAND_HELP[command]) {
    process.stdout.write(`${COMMAND_HELP[command]}\n`);
    return 0;
  }
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  if (!COMMANDS.includes(command)) {
    process.stderr.write(`error: unknown command "${command}" (commands: ${COMMANDS.join(", ")}; --help for usage)\n`);
    return 2;
  }
  if (command !== "restore" && (values.to !== undefined || values["if-missing"] || (values.force && command !== "delete"))) {
    return usageError(`--to, --force and --if-missing belong to restore (--force also to delete), not ${command}`);
  }
  if (command !== "restore" && values.format !== undefined) {
    return usageError(`--format belongs to restore, not ${command}`);
  }
  if (command !== "delete" && values.yes) return usageError(`--yes belongs to delete, not ${command}`);
  if (command !== "info" && values.verify) return usageError(`--verify belongs to info, not ${command} (to prove a backup: verify)`);
  if ((command === "verify" || command === "restore" || command === "link" || command === "info") && rest.length > 1) {
    return usageError(`${command} takes one backup (a file name or "latest"), got ${rest.length}`);
  }
  if (command === "delete") {
    if (rest.length !== 1) return usageError(`delete takes exactly one backup file name (as list shows it), got ${rest.length}`);
    // Nobody can answer a question on a pipe: say so before touching anything.
    if (!values.yes && !process.stdin.isTTY) return usageError("delete asks for confirmation, and stdin is not a terminal: pass --yes to delete without asking");
  }
  if (command === "restore") {
    if (values.to === undefined || values.to.trim() === "") return usageError("restore needs --to PATH (the database file to create or replace)");
    if (values.force && values["if-missing"]) return usageError("--force and --if-missing contradict each other: choose one");
    if (values.format !== undefined && values.format !== "sqlite" && values.format !== "sql") return usageError(`--format is sqlite or sql, not "${values.format}"`);
  }
  // Settings from a file, under the environment's (functions/config-file.ts).
  const given = env;
  let file: ConfigFile | undefined;
  if (values.config !== undefined) {
    if (values.config.trim() === "") return usageError("--config needs a file (a JSON object of settings)");
    const { readConfigFile, withConfigFile } = await import("./config-file.js");
    file = await readConfigFile(values.config);
    env = withConfigFile(file, given);
  }
  runEnv = env;
  const blame = async (err: unknown): Promise<never> => {
    throw file ? (await import("./config-file.js")).blameConfigFile(err, file, given) : err;
  };
  if (command === "serve") {
    const { startServer } = await import("./node-server.js");
    const server = await startServer(env).catch(blame);
    process.stderr.write(`serving on ${server.url}; Ctrl-C to stop\n`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await server.stop();
    return 0;
  }
  const { openBackupClient } = await import("./lib/node.js");
  const format = values["log-format"];
  if (format !== undefined && format !== "json" && format !== "pretty") return usageError(`--log-format is json or pretty, not "${format}"`);
  // A person at a terminal gets a progress line; a pipe, a file or a log collector, JSON lines.
  const logFormat = format ?? (process.stderr.isTTY ? "pretty" : "json");
  const client = await openBackupClient(env, { logFormat, quiet: values.quiet }).catch(blame);
  const name = values.name;
  try {
    if (command === "backup" && name === undefined && client.config.databases.length > 1) return await backupAll(client.backupAll());
    switch (command) {
      case "backup": {
        const manifest = await client.backup({ name });
        process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
        return manifest.pruneError ? 3 : 0;
      }
      case "list": {
        const backups = await client.list({ name });
        if (values.json) process.stdout.write(`${JSON.stringify({ backups }, null, 2)}\n`);
        else if (backups.length === 0) {
          const config = await client.databaseConfig(name);
          process.stderr.write(`no backups of "${config.name}" in s3://${config.s3.bucket}${config.s3.endpoint ? ` at ${config.s3.endpoint}` : ""}\n`);
        } else for (const b of backups) process.stdout.write(`${b.lastModified}  ${String(b.size).padStart(12)}  ${b.file}\n`);
        return 0;
      }
      case "link": {
        const link = await client.link(rest[0] ?? "latest", { name });
        process.stdout.write(`${link.url}\n`);
        return 0;
      }
      case "verify": {
        const report = await client.verify(rest[0] ?? "latest", { name });
        if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else {
          process.stdout.write(
            `ok ${report.key}${report.encrypted ? " (age-encrypted, decrypted)" : ""}: ${report.bytes} bytes, sha256 ${report.sha256} matches, ${report.pageCount} pages of ${report.pageSize} bytes, ${report.check === "structure" ? "structural check" : "integrity_check"} ok\n`,
          );
        }
        return 0;
      }
      case "restore": {
        const result = await client.restore({ name, which: rest[0] ?? "latest", to: values.to ?? "", force: values.force, ifMissing: values["if-missing"], format: values.format === "sql" ? "sql" : "sqlite" });
        if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else if (!result.restored) process.stdout.write(`${result.target} exists; nothing restored\n`);
        else {
          const replaced = result.replaced ? " (replaced the existing file)" : "";
          const as = result.format === "sql" ? ` as SQL (${result.sqlBytes} bytes; load it with wrangler d1 execute DB --remote --file ${result.target})` : "";
          process.stdout.write(`restored ${result.key} (${result.bytes} bytes, sha256 ${result.sha256}) to ${result.target}${as}${replaced}\n`);
        }
        return 0;
      }
      case "info": {
        const info = await client.info(rest[0] ?? "latest", { name, verify: values.verify });
        process.stdout.write(values.json ? `${JSON.stringify(info, null, 2)}\n` : describeInfo(info));
        return 0;
      }
      case "delete": {
        const file = rest[0]!;
        if (!values.yes) {
          // Look first (validates the name, 404 before asking); the newest without --force is refused by the delete itself.
          const info = await client.info(file, { name });
          if (!info.newest || values.force) {
            const what = `${info.key} (${info.storedBytes} bytes, made ${info.createdAt}${info.newest ? "; the NEWEST backup" : ""})`;
            if (!(await confirm(`delete ${what}? [y/N] `))) {
              process.stderr.write("not confirmed; nothing deleted\n");
              return 1;
            }
          }
        }
        const deleted = await client.deleteBackup(file, { name, force: values.force });
        process.stdout.write(values.json ? `${JSON.stringify(deleted, null, 2)}\n` : `deleted ${deleted.key} (${deleted.remaining} backup${deleted.remaining === 1 ? "" : "s"} of "${deleted.name}" left)\n`);
        return 0;
      }
      default:
        return 2;
    }
  } finally {
    await client.close();
  }
}

/**
 * `backup` with several databases: each in turn (one failing does not stop the others), one
 * JSON document with every outcome; exit 1 if any failed, 3 if only pruning did.
 */
async function backupAll(running: Promise<FleetRun<Manifest>[]>): Promise<number> {
  const runs = await running;
  for (const r of runs) if (!r.ok) process.stderr.write(`${describeError(r.error)} (database "${r.name}")\n`);
  const shown = runs.map((r) => (r.ok ? { name: r.name, ok: true, manifest: r.result } : { name: r.name, ok: false, error: { code: r.error.code, message: r.error.message } }));
  process.stdout.write(`${JSON.stringify({ runs: shown }, null, 2)}\n`);
  return runs.some((r) => !r.ok) ? 1 : runs.some((r) => r.ok && r.result.pruneError) ? 3 : 0;
}

/** `info` for a person: one fact per line. */
function describeInfo(i: BackupInfo): string {
  const unknown = "(not in its metadata)";
  const rows: [string, string][] = [
    ["key", i.key],
    ["made", `${i.createdAt} (run started); stored ${i.lastModified}`],
    ["newest", i.newest ? "yes" : "no"],
    ["stored", `${i.storedBytes} bytes${i.contentType ? ` (${i.contentType})` : ""}`],
    ["image", i.bytes === null ? unknown : `${i.bytes} bytes`],
    ["sha256", i.sha256 ?? unknown],
    ["pages", i.pageCount === null || i.pageSize === null ? unknown : `${i.pageCount} of ${i.pageSize} bytes`],
    ["sqlite", i.sqliteVersion ?? unknown],
    ["format", `${i.format ?? unknown}${i.encrypted ? ", age-encrypted" : ", not encrypted"}`],
    [
      "verified",
      i.verified === "now"
        ? `now: sha256 and size match, ${i.verification?.check === "structure" ? "structural check" : "integrity_check"} ok`
        : i.verified === "at-backup"
          ? "when it was made (its run keeps only uploads that pass VERIFY; not recorded which level); `info --verify` proves it now"
          : `no: ${i.problems?.join("; ") ?? "its metadata is not this tool's"}`,
    ],
  ];
  return rows.map(([k, v]) => `${k.padEnd(9)}${v}\n`).join("");
}

/** One line from a person at the terminal; yes only for "y" or "yes". */
async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    // End of input (Ctrl-D) is a no, not a hang.
    const closed = new Promise<string>((resolve) => rl.once("close", () => resolve("")));
    const answer = await Promise.race([rl.question(question), closed]);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}

export function describeError(err: unknown): string {
  if (err instanceof BackupError) return `error [${err.code}]: ${err.message}`;
  if (err instanceof Error && "code" in err && String((err as { code: unknown }).code).startsWith("ERR_PARSE_ARGS")) return `error: ${err.message}`;
  return `error: ${err instanceof Error ? err.message : String(err)}`;
}

/** Run the command line and exit with its status (the bin, and `npm run cli`). */
export function run(argv: string[] = process.argv.slice(2)): void {
  main(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // At a terminal, the progress line may still be open: the error starts a line of its own.
      process.stderr.write(`${process.stderr.isTTY ? "\r\x1b[2K" : ""}${redact(describeError(err), [runEnv.S3_SECRET_ACCESS_KEY ?? "", runEnv.API_KEY ?? "", runEnv.AGE_IDENTITY ?? ""])}\n`);
      process.exit(1);
    },
  );
}

// Run when executed directly (`npm run cli`), not when imported (tests, functions/bin.ts).
if (import.meta.url === `file://${process.argv[1]}`) run();
