/**
 * A real browser for the status page: Debian's Chromium (/usr/bin/chromium, package
 * `chromium`, installed by .ci/run) driven by playwright-core, which downloads nothing.
 * Headless, no sandbox (CI runs as root), no background networking, a fresh profile per
 * launch. Every request any page makes is recorded, so a test can assert that none left
 * 127.0.0.1; every console error and uncaught exception is recorded with the step it
 * happened in.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page, type Response } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface ConsoleProblem {
  step: string;
  text: string;
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Every URL requested, in order. */
  requests: string[];
  /** Console errors and page errors, with the step they happened in. */
  problems: ConsoleProblem[];
  /** The step the scenario is in (labels problems). */
  step: string;
  close(): Promise<void>;
}

/** Launch Chromium; fails (never skips) with what to install when it is missing. */
export async function launch(viewport: { width: number; height: number }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the browser tests need Chromium at ${CHROMIUM}: apt-get install chromium (Debian; .ci/run installs it), or set CHROMIUM_PATH`);
  }
  const profile = await mkdtemp(join(tmpdir(), "seb-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport,
    acceptDownloads: true,
    serviceWorkers: "block",
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const b: Browser = {
    context,
    page,
    requests: [],
    problems: [],
    step: "start",
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
  context.on("request", (r) => b.requests.push(r.url()));
  page.on("console", (m) => {
    if (m.type() === "error") b.problems.push({ step: b.step, text: `${m.text()} @ ${m.location().url}` });
  });
  page.on("pageerror", (e) => b.problems.push({ step: b.step, text: `uncaught: ${e.message}` }));
  return b;
}

/** URLs whose host is not 127.0.0.1 (data: URLs never leave the browser). */
export function offHost(urls: readonly string[]): string[] {
  return urls.filter((u) => {
    const url = new URL(u);
    return url.protocol !== "data:" && url.hostname !== "127.0.0.1";
  });
}

/** Bytes a response took on the wire: headers and body as received (compressed if it was). */
export async function transferred(res: Response): Promise<number> {
  const sizes = await res.request().sizes();
  return sizes.responseHeadersSize + sizes.responseBodySize;
}
