/**
 * A webhook receiver for the alert tests: a real node:http server on 127.0.0.1 that records
 * every request (method, path with query, headers, body) and answers as the test scripts it —
 * a status per request in turn, or never (to exercise the sender's timeout).
 */
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** How to answer one request: an HTTP status, or "hang" (read the body, never answer). */
export type Reply = number | "hang";

export class Receiver {
  private server!: Server;
  private readonly hanging: ServerResponse[] = [];
  base = "";
  readonly received: Received[] = [];
  /** Replies for the next requests, in order; once used up, `fallback` answers. */
  script: Reply[] = [];
  fallback: Reply = 200;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        const reply = this.script.shift() ?? this.fallback;
        if (reply === "hang") this.hanging.push(res);
        else res.writeHead(reply, { "Content-Type": "text/plain" }).end(reply < 300 ? "OK" : "nope");
      });
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Forget what was received and answer 200 from now on. */
  reset(): void {
    this.received.length = 0;
    this.script = [];
    this.fallback = 200;
  }

  /** The bodies received, parsed. */
  json(): Record<string, unknown>[] {
    return this.received.map((r) => JSON.parse(r.body) as Record<string, unknown>);
  }

  async close(): Promise<void> {
    if (!this.server) return;
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
