/**
 * The documentation cannot drift from the code: the configuration reference covers exactly
 * the contract's variables (and agrees with the parser on secrets and defaults), the generated
 * files are what `npm run docs` makes now, the README stays short, and every relative link in
 * README.md and docs/ reaches an existing file and heading.
 */
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { NODE_MAX_BYTES } from "../functions/node-runtime.js";
import { CONFIG_REFERENCE } from "../src/config-reference.js";
import { CONFIG_VARIABLES, parseConfig, SECRET_VARIABLES } from "../src/config.js";
import { anchor, renderDocs, ROOT } from "../scripts/gen-docs.js";

const README_MAX_BYTES = 15 * 1024;

describe("configuration reference", () => {
  it("has an entry for every variable of CONFIG_VARIABLES and none besides", () => {
    const documented = Object.keys(CONFIG_REFERENCE).sort();
    const contract = [...CONFIG_VARIABLES].sort();
    expect(documented.filter((v) => !contract.includes(v as never)), "documented but not in CONFIG_VARIABLES").toEqual([]);
    expect(contract.filter((v) => !documented.includes(v)), "in CONFIG_VARIABLES without a reference entry (src/config-reference.ts)").toEqual([]);
  });

  it("marks exactly SECRET_VARIABLES as secret", () => {
    const secret = CONFIG_VARIABLES.filter((v) => CONFIG_REFERENCE[v].secret).sort();
    expect(secret).toEqual([...SECRET_VARIABLES].sort());
  });

  it("gives defaults the parser agrees with: setting a variable to its documented default changes nothing", () => {
    const base = { BACKUP_SOURCE: "/var/lib/app/app.db", S3_BUCKET: "backups" };
    const unset = parseConfig(base, { maxBytes: NODE_MAX_BYTES });
    const withDefaults = CONFIG_VARIABLES.filter((v) => CONFIG_REFERENCE[v].defaultValue !== undefined);
    expect(withDefaults.length).toBeGreaterThan(15);
    for (const v of withDefaults) {
      const set = parseConfig({ ...base, [v]: CONFIG_REFERENCE[v].defaultValue }, { maxBytes: NODE_MAX_BYTES });
      expect(set, `${v}=${CONFIG_REFERENCE[v].defaultValue} should be its default`).toEqual(unset);
    }
  });

  it("documents no default that the parser rejects or treats as different (a wrong default is caught)", () => {
    // The check above must be able to fail: MAX_COUNT=8 is not the default.
    const base = { BACKUP_SOURCE: "/var/lib/app/app.db", S3_BUCKET: "backups" };
    expect(parseConfig({ ...base, MAX_COUNT: "8" }, { maxBytes: NODE_MAX_BYTES })).not.toEqual(parseConfig(base, { maxBytes: NODE_MAX_BYTES }));
  });
});

describe("generated documentation", () => {
  let generated: Record<string, string>;
  beforeAll(async () => {
    generated = await renderDocs();
  });

  it("is what `npm run docs` writes now (docs/configuration.md, docs/http-api.md, the README's settings)", async () => {
    expect(Object.keys(generated).sort()).toEqual(["README.md", "docs/configuration.md", "docs/http-api.md"]);
    const stale: string[] = [];
    for (const [path, content] of Object.entries(generated)) {
      const committed = await readFile(join(ROOT, path), "utf8").catch(() => "(missing)");
      if (committed !== content) stale.push(path);
    }
    expect(stale, `stale generated documentation: run \`npm run docs\` and commit ${stale.join(", ")}`).toEqual([]);
  });

  it("lists every variable in docs/configuration.md and every route of the OpenAPI document in docs/http-api.md", () => {
    const config = generated["docs/configuration.md"]!;
    for (const v of CONFIG_VARIABLES) expect(config, v).toContain(`### \`${v}\``);
    const api = generated["docs/http-api.md"]!;
    for (const route of ["GET /health", "POST /backups", "GET /backups", "GET /backups/latest/link", "GET /backups/{file}/link", "GET /status", "GET /metrics", "GET /openapi.json"]) {
      expect(api, route).toContain(`### \`${route}\``);
    }
  });
});

describe("README and docs/", () => {
  let files: string[];
  beforeAll(async () => {
    files = ["README.md", ...(await readdir(join(ROOT, "docs"))).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  });

  it(`README.md is at most ${README_MAX_BYTES} bytes`, async () => {
    const size = Buffer.byteLength(await readFile(join(ROOT, "README.md"), "utf8"));
    expect(size).toBeLessThanOrEqual(README_MAX_BYTES);
  });

  it("every relative link points to an existing file, and every #anchor to a heading there", async () => {
    const broken: string[] = [];
    let checked = 0;
    for (const file of files) {
      const text = await readFile(join(ROOT, file), "utf8");
      for (const target of relativeLinks(text)) {
        checked++;
        const [path, hash] = splitLink(target);
        const resolved = path === "" ? file : relative(ROOT, join(ROOT, dirname(file), path));
        const content = await readFile(join(ROOT, resolved), "utf8").catch(() => undefined);
        if (content === undefined) {
          broken.push(`${file}: ${target} (no file ${resolved})`);
          continue;
        }
        if (hash !== undefined && resolved.endsWith(".md") && !headingAnchors(content).has(hash)) broken.push(`${file}: ${target} (no heading #${hash} in ${resolved})`);
      }
    }
    expect(checked).toBeGreaterThan(50);
    expect(broken).toEqual([]);
  });

  it("the link check finds a missing file and a missing heading", () => {
    const text = "See [a](missing.md), [b](#nowhere) and [c](https://example.com).\n\n## Here\n";
    expect(relativeLinks(text)).toEqual(["missing.md", "#nowhere"]);
    expect(headingAnchors(text).has("here")).toBe(true);
    expect(headingAnchors(text).has("nowhere")).toBe(false);
  });
});

/** Relative link targets of a Markdown text, outside code blocks and code spans. */
function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  for (const line of proseLines(markdown)) {
    const prose = line.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) links.push(target);
    }
  }
  return links;
}

function splitLink(target: string): [string, string | undefined] {
  const i = target.indexOf("#");
  return i < 0 ? [target, undefined] : [target.slice(0, i), target.slice(i + 1)];
}

/** The anchors GitHub gives a file's headings (a repeated heading gets -1, -2, …). */
function headingAnchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of proseLines(markdown)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = anchor(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

function proseLines(markdown: string): string[] {
  let fenced = false;
  return markdown.split("\n").filter((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return false;
    }
    return !fenced;
  });
}
