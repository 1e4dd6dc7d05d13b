/**
 * src/ is the runtime-free core: it must bundle for Workers, so no Node built-ins and no
 * imports from the runtime adapters in functions/.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)])));
  return nested.flat().filter((f) => f.endsWith(".ts"));
}

describe("architecture", () => {
  it("src/ imports no Node built-ins and nothing from functions/", async () => {
    const offenders: string[] = [];
    for (const file of await files("src")) {
      const text = await readFile(file, "utf8");
      for (const m of text.matchAll(/^\s*(?:import|export)[^;]*?from\s+["']([^"']+)["']/gm)) {
        const spec = m[1] ?? "";
        if (spec.startsWith("node:") || /^(fs|path|os|crypto|zlib|stream|child_process|http|https|url|util)(\/|$)/.test(spec) || spec.includes("functions/")) {
          offenders.push(`${file}: ${spec}`);
        }
      }
      if (/\bprocess\.(env|argv|exit)|\bBuffer\./.test(text)) offenders.push(`${file}: uses a Node global`);
    }
    expect(offenders).toEqual([]);
  });
});
