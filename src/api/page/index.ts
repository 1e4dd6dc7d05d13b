/**
 * The status page at `/`: three static assets served by the app itself on both runtimes (no
 * file reads, no CDN). They carry no data and need no key; the script asks for the key and
 * reads the API with it. The strict Content-Security-Policy and X-Frame-Options come from
 * headers.ts, for every answer of the app.
 */
import type { Hono } from "hono";
import { PAGE_HTML } from "./html.js";
import { PAGE_JS } from "./script.js";
import { PAGE_CSS } from "./style.js";

/** Path → [content type, body]. Relative links in the HTML ("page/app.js") resolve to these. */
export const PAGE_ASSETS: Readonly<Record<string, readonly [string, string]>> = {
  "/": ["text/html; charset=utf-8", PAGE_HTML],
  "/page/app.js": ["text/javascript; charset=utf-8", PAGE_JS],
  "/page/app.css": ["text/css; charset=utf-8", PAGE_CSS],
};

// Hono's generics differ between OpenAPIHono and Hono; only get() is used.
export function registerPage(app: Pick<Hono, "get">): void {
  for (const [path, [type, body]] of Object.entries(PAGE_ASSETS)) {
    app.get(path, (c) => c.body(body, 200, { "Content-Type": type }));
  }
}
