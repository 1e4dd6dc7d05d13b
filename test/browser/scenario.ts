/**
 * What a person does with the status page, the same on both runtimes: open it (only the key
 * prompt, no data, strict headers), try a wrong key, open it with the right one (databases,
 * charts, backups with sha256 and verification), download a backup through its button (the
 * bytes gunzip to the source), watch a run that is going on (phase and bytes, refreshed),
 * get "already running" from the button meanwhile, trigger a backup and see it appear.
 * Screenshots at phone and desktop widths land in test-results/screenshots/ (ignored by git),
 * or, with UPDATE_SCREENSHOTS=1 (`npm run screenshots`), in docs/screenshots/ for the docs: a
 * test run does not leave the working tree dirty.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { expect } from "vitest";
import type { Response as PwResponse } from "playwright-core";
import { CONTENT_SECURITY_POLICY } from "../../src/api/headers.js";
import { sha256 } from "../helpers/db.js";
import type { Route } from "../workers/harness.js";
import { REPO_ROOT } from "../workers/worker-bundle.js";
import { launch, offHost, transferred } from "./browser.js";

export const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === "1" ? join(REPO_ROOT, "docs", "screenshots") : join(REPO_ROOT, "test-results", "screenshots");
export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

/** A database served over HTTP whose next response can be held half-sent (a run in progress). */
export class HeldSource {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  constructor(public bytes: Uint8Array) {}

  readonly route: Route = (_req, res) => {
    const bytes = this.bytes;
    res.writeHead(200, { "Content-Type": "application/vnd.sqlite3", "Content-Length": bytes.length });
    const gate = this.gate;
    if (!gate) return void res.end(bytes);
    const half = Math.floor(bytes.length / 2);
    res.write(bytes.subarray(0, half));
    void gate.then(() => res.end(bytes.subarray(half)));
  };

  /** Hold the next responses after their first half until the returned function is called. */
  hold(): () => void {
    this.gate = new Promise<void>((resolve) => (this.open = resolve));
    return () => this.release();
  }

  /** Send the rest of every held response (also when a test failed midway, so servers can stop). */
  release(): void {
    this.gate = undefined;
    this.open?.();
  }
}

export interface Target {
  label: "node" | "worker";
  /** http://127.0.0.1:port, where the app answers. */
  base: string;
  name: string;
  apiKey: string;
  source: HeldSource;
  /** The database bytes of the two backups made before the page opens (oldest first). */
  made: [Uint8Array, Uint8Array];
  /** Databases for the run watched while it goes on and for the one the button triggers. */
  next: [Uint8Array, Uint8Array];
  /** Whether /status knows the next scheduled run here. */
  nextRunKnown: boolean;
}

export interface Figures {
  /** Bytes transferred (headers + bodies) for the first load: the document, its script and its style. */
  firstLoadBytes: number;
  firstLoad: { url: string; bytes: number }[];
  /** Bytes transferred for the data once the key is in (status + listing). */
  dataBytes: number;
}

export async function exerciseStatusPage(t: Target, options: { keyPromptShot?: boolean } = {}): Promise<Figures> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const b = await launch(DESKTOP);
  const { page } = b;
  const db = page.locator(`section[data-name="${t.name}"]`);
  const rows = db.locator("tbody tr[data-key]");
  try {
    // ---------------------------------------------------------------- the key prompt only
    b.step = "first load";
    const loaded: PwResponse[] = [];
    const onResponse = (r: PwResponse) => loaded.push(r);
    page.on("response", onResponse);
    const doc = await page.goto(`${t.base}/`);
    await expect.poll(() => page.locator("#login").isVisible()).toBe(true);
    await page.waitForLoadState("load");
    page.off("response", onResponse);
    expect(doc!.status()).toBe(200);
    const headers = doc!.headers();
    expect(headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
    expect(headers["x-frame-options"]).toBe("DENY");
    expect(headers["x-content-type-options"]).toBe("nosniff");
    expect(headers["content-type"]).toBe("text/html; charset=utf-8");
    // Nothing but the page's own three files, and no data in them.
    expect(loaded.map((r) => new URL(r.url()).pathname).sort()).toEqual(["/", "/page/app.css", "/page/app.js"]);
    for (const r of loaded) expect(await r.text()).not.toContain(t.name);
    expect(await page.locator("#dashboard").isHidden()).toBe(true);
    const firstLoad = await Promise.all(loaded.map(async (r) => ({ url: new URL(r.url()).pathname, bytes: await transferred(r) })));
    if (options.keyPromptShot) await page.screenshot({ path: join(SCREENSHOTS, "status-page-key-prompt.png") });

    // -------------------------------------------------------------------- a wrong key
    b.step = "wrong key";
    await page.fill("#key", "not-the-api-key-at-all");
    await page.click("#login button[type=submit]");
    await expect.poll(() => page.locator("#login-error").textContent()).toContain("HTTP 401");
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.locator("#dashboard").isHidden()).toBe(true);

    // ---------------------------------------------------- the right key, with the keyboard
    b.step = "key";
    const statusRequest = page.waitForRequest((r) => new URL(r.url()).pathname === "/status");
    const dataResponses: PwResponse[] = [];
    const onData = (r: PwResponse) => dataResponses.push(r);
    page.on("response", onData);
    await page.fill("#key", t.apiKey);
    await page.press("#key", "Enter");
    expect((await statusRequest).headers().authorization).toBe(`Bearer ${t.apiKey}`);
    await expect.poll(() => rows.count()).toBe(2);
    page.off("response", onData);
    const dataBytes = (await Promise.all(dataResponses.map(transferred))).reduce((a, n) => a + n, 0);
    expect(await page.locator("#login").isHidden()).toBe(true);
    expect(await db.locator("h2").textContent()).toBe(t.name);
    expect(await db.locator(".badge").textContent()).toBe("last run ok");
    const facts = await db.locator(".facts").innerText();
    expect(facts).toContain("Last run");
    expect(facts).toMatch(/Size\s+[\d.]+ KiB image, [\d.]+ KiB compressed/);
    expect(facts).toMatch(t.nextRunKnown ? /Next scheduled run\s+\S+.*\(in / : /Next scheduled run\s+not known here/);
    expect(facts).toMatch(/Now\s+idle/);
    // Newest first, each with the sha256 of its image and how it was verified.
    const shas = await rows.locator("code.sha").evaluateAll((els) => els.map((e) => e.getAttribute("title")));
    expect(shas).toEqual([sha256(t.made[1]), sha256(t.made[0])]);
    expect(await rows.first().locator("td[data-label=Verified]").textContent()).toContain("size and metadata");
    // The charts: one point per backup and series, one per run.
    expect(await db.locator(".chart-sizes circle[data-series=image]").count()).toBe(2);
    expect(await db.locator(".chart-sizes circle[data-series=stored]").count()).toBe(2);
    expect(await db.locator(".chart-runs circle").count()).toBe(2);
    expect(await db.locator(".chart-sizes svg").getAttribute("aria-label")).toContain("2 backups");

    // ------------------------------------------------------------------------ download
    b.step = "download";
    const downloading = page.waitForEvent("download");
    await rows.first().getByRole("button", { name: /^Download / }).click();
    const download = await downloading;
    expect(download.suggestedFilename()).toMatch(new RegExp(`^${t.name}-.*\\.sqlite\\.gz$`));
    const gz = await readFile((await download.path())!);
    expect(sha256(new Uint8Array(gunzipSync(gz)))).toBe(sha256(t.made[1]));
    expect(page.url()).toBe(`${t.base}/`);

    // ------------------------------------------- a run going on: phase and bytes, refreshed
    b.step = "running";
    t.source.bytes = t.next[0];
    const release = t.source.hold();
    const held = fetch(`${t.base}/backups`, { method: "POST", headers: { Authorization: `Bearer ${t.apiKey}` } });
    // A reload keeps the key (sessionStorage, this tab) and shows the run at once.
    await expect.poll(async () => (await fetch(`${t.base}/status`, { headers: { Authorization: `Bearer ${t.apiKey}` } }).then((r) => r.json()) as { progress?: { phase: string; bytesDone?: number } }).progress?.bytesDone ?? 0).toBeGreaterThan(0);
    await page.reload();
    await expect.poll(() => db.locator(".badge").textContent()).toBe("running");
    const bar = db.locator(".facts progress");
    await expect.poll(() => bar.count()).toBe(1);
    expect(Number(await bar.getAttribute("max"))).toBe(t.next[0].length);
    expect(Number(await bar.getAttribute("value"))).toBeGreaterThan(0);
    expect(await db.locator(".facts").innerText()).toMatch(/Now\s+running since .* · reading\s+[\d.]+ KiB of [\d.]+ MiB \(\d+ %\)/);

    // --------------------------------------------------- the button meanwhile: already running
    b.step = "conflict";
    await db.getByRole("button", { name: "Back up now" }).click();
    await expect.poll(() => db.locator(".msg").textContent()).toMatch(/^Already running: a backup of .* is still running/);
    b.step = "screenshot running";
    await page.screenshot({ path: join(SCREENSHOTS, `status-page-${t.label}-running.png`), fullPage: true });

    b.step = "run ends";
    release();
    expect((await held).status).toBe(201);
    // The page refreshes every second while a run goes on: the new backup appears without a reload.
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(3);
    await expect.poll(() => db.locator(".badge").textContent()).toBe("last run ok");
    expect(await rows.first().locator("code.sha").getAttribute("title")).toBe(sha256(t.next[0]));

    // ------------------------------------------------- trigger from the page, keyboard only
    b.step = "trigger";
    t.source.bytes = t.next[1];
    await db.getByRole("button", { name: "Back up now" }).focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => db.locator(".msg").textContent(), { timeout: 30_000 }).toMatch(/^Backed up: .*\.sqlite\.gz \(/);
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(4);
    expect(await rows.first().locator("code.sha").getAttribute("title")).toBe(sha256(t.next[1]));
    expect(await db.locator(".chart-runs circle").count()).toBe(4);

    // ---------------------------------------------------------------------- screenshots
    b.step = "screenshots";
    await page.screenshot({ path: join(SCREENSHOTS, `status-page-${t.label}-desktop.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(SCREENSHOTS, `status-page-${t.label}-desktop-dark.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize(PHONE);
    // On a phone the rows are cards: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await page.screenshot({ path: join(SCREENSHOTS, `status-page-${t.label}-phone.png`), fullPage: true });

    // ------------------------------------------------------------------ what never happened
    expect(offHost(b.requests)).toEqual([]);
    // The only console errors are Chromium's notes of the two answers the steps asked for.
    expect(b.problems.map((p) => [p.step, /status of (\d+)/.exec(p.text)?.[1] ?? p.text])).toEqual([
      ["wrong key", "401"],
      ["conflict", "409"],
    ]);
    return { firstLoadBytes: firstLoad.reduce((a, r) => a + r.bytes, 0), firstLoad, dataBytes };
  } catch (err) {
    // Where it stopped, with what the browser said.
    throw new Error(`status page (${t.label}) failed in step "${b.step}": ${err instanceof Error ? err.message : String(err)}\nconsole: ${JSON.stringify(b.problems)}`, { cause: err });
  } finally {
    t.source.release();
    await b.close();
  }
}
