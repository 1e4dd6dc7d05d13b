/**
 * The age command-line tools (Debian package `age`: age, age-keygen), the reference the
 * encryption tests cross-check this tool against. CI installs them and sets
 * REQUIRE_AGE_CLI=1, so a missing CLI fails the run there. Without the CLI and without that
 * variable (a developer machine), the same operations go through typage, with a warning:
 * the tests still assert real decryption, but not interoperability with the reference.
 */
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import { registerSecret } from "./log-capture.js";

export interface AgeKey {
  /** The identity file, as age-keygen writes it. */
  path: string;
  identity: string;
  recipient: string;
}

export interface AgeTool {
  kind: "cli" | "library";
  /** A new X25519 key written to `path`; its identity is registered as a secret of the run. */
  keygen(path: string): Promise<AgeKey>;
  /** `age -e -r … ` of `input`. */
  encrypt(input: Uint8Array, recipients: readonly string[]): Promise<Uint8Array>;
  /** `age -d -i identityFile` of `input`; throws with age's message when it cannot. */
  decrypt(input: Uint8Array, identityFile: string): Promise<Uint8Array>;
}

const BIG = { maxBuffer: 1024 ** 3 };

function cliPresent(): boolean {
  try {
    execFileSync("age", ["--version"], { stdio: "pipe" });
    execFileSync("age-keygen", ["--version"], { stdio: "pipe" });
    return true;
  } catch (err) {
    if (process.env.REQUIRE_AGE_CLI === "1") {
      throw new Error("the age CLI (age and age-keygen) is required for this run: apt-get install age", { cause: err });
    }
    return false;
  }
}

const cli: AgeTool = {
  kind: "cli",
  async keygen(path) {
    execFileSync("age-keygen", ["-o", path], { stdio: "pipe" });
    const identity = (await readFile(path, "utf8")).split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    registerSecret("AGE_IDENTITY", identity);
    const recipient = execFileSync("age-keygen", ["-y", path], { encoding: "utf8" }).trim();
    return { path, identity, recipient };
  },
  async encrypt(input, recipients) {
    return new Uint8Array(execFileSync("age", ["-e", ...recipients.flatMap((r) => ["-r", r])], { input, ...BIG }));
  },
  async decrypt(input, identityFile) {
    try {
      return new Uint8Array(execFileSync("age", ["-d", "-i", identityFile], { input, stdio: ["pipe", "pipe", "pipe"], ...BIG }));
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? "");
      throw new Error(`age -d failed: ${stderr.trim()}`, { cause: err });
    }
  },
};

const library: AgeTool = {
  kind: "library",
  async keygen(path) {
    const identity = await generateX25519Identity();
    registerSecret("AGE_IDENTITY", identity);
    const recipient = await identityToRecipient(identity);
    await writeFile(path, `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`, { mode: 0o600 });
    return { path, identity, recipient };
  },
  async encrypt(input, recipients) {
    const e = new Encrypter();
    for (const r of recipients) e.addRecipient(r);
    return e.encrypt(input);
  },
  async decrypt(input, identityFile) {
    const d = new Decrypter();
    for (const line of (await readFile(identityFile, "utf8")).split("\n")) if (line.startsWith("AGE-SECRET-KEY-1")) d.addIdentity(line);
    return d.decrypt(input);
  },
};

let chosen: AgeTool | undefined;

export function ageTool(): AgeTool {
  if (!chosen) {
    chosen = cliPresent() ? cli : library;
    if (chosen === library) console.warn("age CLI not installed: the age tests use typage in its place (set REQUIRE_AGE_CLI=1 to require the CLI; apt-get install age)");
  }
  return chosen;
}
