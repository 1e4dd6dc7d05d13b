/**
 * The scan at the end of a run: every registered secret against every captured file. Pure
 * (findLeaks) apart from reading the run directory (readCapture). Reports name the secret's
 * kind and the file, never the secret.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { LOGS_DIR, MIN_SECRET_LENGTH, SECRETS_DIR } from "./log-capture.js";

export interface Secret {
  kind: string;
  value: string;
}

export interface CapturedFile {
  name: string;
  text: string;
}

export interface Leak {
  kind: string;
  file: string;
  /** How it appeared: as is, JSON-escaped or URL-encoded. */
  form: "raw" | "json" | "url";
}

/** The forms a secret takes when written as is, inside a JSON string, or in a URL. */
export function secretForms(value: string): { form: Leak["form"]; text: string }[] {
  const forms: { form: Leak["form"]; text: string }[] = [{ form: "raw", text: value }];
  const json = JSON.stringify(value).slice(1, -1);
  if (json !== value) forms.push({ form: "json", text: json });
  const url = encodeURIComponent(value);
  if (url !== value) forms.push({ form: "url", text: url });
  return forms;
}

export function findLeaks(files: readonly CapturedFile[], secrets: readonly Secret[]): Leak[] {
  // One entry per value; a value registered under several kinds is reported with all of them.
  const kinds = new Map<string, Set<string>>();
  for (const s of secrets) {
    if (s.value.length < MIN_SECRET_LENGTH) continue;
    kinds.set(s.value, (kinds.get(s.value) ?? new Set()).add(s.kind));
  }
  const leaks: Leak[] = [];
  for (const file of files) {
    for (const [value, kind] of kinds) {
      const hit = secretForms(value).find((f) => file.text.includes(f.text));
      if (hit) leaks.push({ kind: [...kind].sort().join(" / "), file: file.name, form: hit.form });
    }
  }
  return leaks;
}

export function describeLeaks(leaks: readonly Leak[], dir: string): string {
  return [
    `${leaks.length} secret leak(s) in the captured test output (kept in ${dir}):`,
    ...leaks.map((l) => `  ${l.kind} appears (${l.form}) in ${l.file}`),
  ].join("\n");
}

export async function readCapture(dir: string): Promise<{ files: CapturedFile[]; secrets: Secret[] }> {
  const files: CapturedFile[] = [];
  for (const name of await readdir(join(dir, LOGS_DIR)).catch(() => [])) {
    files.push({ name: `${LOGS_DIR}/${name}`, text: await readFile(join(dir, LOGS_DIR, name), "utf8") });
  }
  const secrets: Secret[] = [];
  for (const name of await readdir(join(dir, SECRETS_DIR)).catch(() => [])) {
    for (const line of (await readFile(join(dir, SECRETS_DIR, name), "utf8")).split("\n")) {
      if (line) secrets.push(JSON.parse(line) as Secret);
    }
  }
  return { files, secrets };
}
