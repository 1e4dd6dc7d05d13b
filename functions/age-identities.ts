/**
 * AGE_IDENTITY, or the identities in the file AGE_IDENTITY_FILE names (read here: src/ reads
 * no files). Errors name the file, never its content.
 */
import { readFile } from "node:fs/promises";
import type { Config } from "../src/config.js";
import { BackupError } from "../src/errors.js";

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
  // age-encryption (in src/encrypt.ts) is loaded only by the commands that decrypt.
  const { parseIdentityFile } = await import("../src/encrypt.js");
  return parseIdentityFile(text, path);
}
