/**
 * An HTTP proxy on 127.0.0.1 between the tool and a real S3 server that injects faults per
 * S3 operation: an error status (500, 503 SlowDown), a connection reset in the middle of the
 * request body, a response cut off in the middle of its body, a stall (no answer until the
 * client gives up), or a corrupted response body.
 * Requests pass through byte for byte otherwise, Host header included, so SigV4 signatures
 * made for the proxy's address still verify upstream.
 *
 * Faults come from an explicit plan (set) or, for soak tests, from a seeded random mode
 * (random): each request is faulted with a given probability, its kind drawn from a mix.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { mulberry32 } from "./random.js";

export type S3Operation =
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListMultipartUploads"
  | "ListObjectsV2"
  | "DeleteObjects"
  | "DeleteObject"
  | "HeadObject"
  | "HeadBucket"
  | "GetObject"
  | "PutObject"
  | "Other";

/** `cut`: the response's status, headers and about half its body pass, then the connection is closed (never in the random mix by default). */
export type FaultKind = "500" | "503" | "reset" | "stall" | "corrupt" | "cut";

export interface Fault {
  op: S3Operation;
  kind: FaultKind;
  /** How many matching requests get the fault (then they pass); default 1. Infinity = always. */
  times?: number;
  /** Only UploadPart number `part` (1-based). */
  part?: number;
  /** Run before the fault reaches the client (for `cut`: before the connection closes), e.g. to change the object meanwhile. */
  before?: () => Promise<void>;
}

export interface RandomFaults {
  seed: number;
  /** Chance that a request is faulted, 0..1. */
  probability: number;
  /** Relative weights of the kinds (default: all equal). */
  mix?: Partial<Record<FaultKind, number>>;
  /** Operations that may be faulted (default: every operation but Other). */
  ops?: readonly S3Operation[];
}

/**
 * Operations whose response a "corrupt" fault may damage in random mode. Excluded: responses
 * without a body (UploadPart, HEAD), and listings, whose flipped byte can turn one key name
 * into another well-formed key (a hex letter of the suffix becomes a digit): a listing that
 * names a backup which does not exist is something no client can detect (S3 listings carry
 * no checksum; TLS prevents it in practice), so it would test the proxy, not the tool.
 * Corrupting CreateMultipartUpload leaves an upload whose id the client never learned;
 * CompleteMultipartUpload, an object the client believes failed; GetObject, a read-back
 * that must fail VERIFY=full; DeleteObjects, a prune whose outcome is unknown.
 */
export const CORRUPTIBLE: readonly S3Operation[] = ["CreateMultipartUpload", "CompleteMultipartUpload", "GetObject", "DeleteObjects"];

export interface FaultCounts {
  total: number;
  byKind: Partial<Record<FaultKind, number>>;
  byOp: Partial<Record<S3Operation, Partial<Record<FaultKind, number>>>>;
}

/**
 * The seeded decision for each request: one PRNG stream per operation (so that, say, an extra
 * UploadPart does not shift the draws of every later CompleteMultipartUpload), two draws per
 * request whatever the outcome. Same seed and same sequence of requests per operation, same
 * faults; parts uploaded in parallel may still swap which part gets which draw.
 */
export function randomFaultPicker(options: RandomFaults): (op: S3Operation) => FaultKind | undefined {
  const mix = Object.entries(options.mix ?? { "500": 1, "503": 1, reset: 1, stall: 1, corrupt: 1 }).filter(
    (e): e is [FaultKind, number] => (e[1] ?? 0) > 0,
  );
  const ops = new Set(options.ops ?? OPERATIONS.filter((o) => o !== "Other"));
  const streams = new Map<S3Operation, () => number>();
  return (op) => {
    let next = streams.get(op);
    if (!next) {
      next = mulberry32(options.seed ^ hashOf(op));
      streams.set(op, next);
    }
    const faulted = next() < options.probability;
    const which = next();
    if (!faulted || !ops.has(op)) return undefined;
    const allowed = mix.filter(([kind]) => kind !== "corrupt" || CORRUPTIBLE.includes(op));
    const total = allowed.reduce((sum, [, w]) => sum + w, 0);
    let at = which * total;
    for (const [kind, weight] of allowed) {
      if (at < weight) return kind;
      at -= weight;
    }
    return allowed.at(-1)?.[0];
  };
}

const OPERATIONS: readonly S3Operation[] = [
  "CreateMultipartUpload",
  "UploadPart",
  "CompleteMultipartUpload",
  "AbortMultipartUpload",
  "ListMultipartUploads",
  "ListObjectsV2",
  "DeleteObjects",
  "DeleteObject",
  "HeadObject",
  "HeadBucket",
  "GetObject",
  "PutObject",
  "Other",
];

/** FNV-1a: a stable 32-bit number per operation name, to give each its own stream. */
function hashOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export interface ProxyRequest {
  op: S3Operation;
  method: string;
  path: string;
  fault?: FaultKind;
  /** The status the client got (set when the answer starts; absent for a reset or a stall). */
  status?: number;
}

/** Which S3 operation a request is, from its method and query (path-style addressing). */
export function operationOf(method: string, url: URL): S3Operation {
  const q = url.searchParams;
  const segments = url.pathname.split("/").filter(Boolean);
  const onBucket = segments.length <= 1;
  switch (method) {
    case "POST":
      if (q.has("uploads")) return "CreateMultipartUpload";
      if (q.has("uploadId")) return "CompleteMultipartUpload";
      if (q.has("delete")) return "DeleteObjects";
      return "Other";
    case "PUT":
      if (q.has("uploadId") && q.has("partNumber")) return "UploadPart";
      return onBucket ? "Other" : "PutObject";
    case "DELETE":
      if (q.has("uploadId")) return "AbortMultipartUpload";
      return onBucket ? "Other" : "DeleteObject";
    case "HEAD":
      return onBucket ? "HeadBucket" : "HeadObject";
    case "GET":
      if (onBucket && q.has("uploads")) return "ListMultipartUploads";
      if (onBucket && q.get("list-type") === "2") return "ListObjectsV2";
      return onBucket ? "Other" : "GetObject";
    default:
      return "Other";
  }
}

const ERROR_BODY: Record<"500" | "503", { code: string; message: string }> = {
  "500": { code: "InternalError", message: "We encountered an internal error. Please try again." },
  "503": { code: "SlowDown", message: "Please reduce your request rate." },
};

export interface FaultProxy {
  endpoint: string;
  /** Every request seen, in order, with the fault it got. */
  readonly requests: ProxyRequest[];
  /** Replace the fault plan. */
  set(faults: Fault[]): void;
  /** Seeded random faults for every request the plan does not fault; undefined turns them off. */
  random(options: RandomFaults | undefined): void;
  /** Faults injected so far. */
  injected(): number;
  /** Faults injected so far, by kind and by operation. */
  counts(): FaultCounts;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  let plan: (Fault & { left: number })[] = [];
  const requests: ProxyRequest[] = [];
  const sockets = new Set<Socket>();
  let randomPick: ((op: S3Operation) => FaultKind | undefined) | undefined;
  const counts: FaultCounts = { total: 0, byKind: {}, byOp: {} };

  let before: (() => Promise<void>) | undefined;
  const pick = (op: S3Operation, part: number | undefined): FaultKind | undefined => {
    const f = plan.find((p) => p.op === op && p.left > 0 && (p.part === undefined || p.part === part));
    if (f) f.left--;
    before = f?.before;
    const kind = f ? f.kind : randomPick?.(op);
    if (kind) {
      counts.total++;
      counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
      const forOp = (counts.byOp[op] ??= {});
      forOp[kind] = (forOp[kind] ?? 0) + 1;
    }
    return kind;
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const op = operationOf(req.method ?? "GET", url);
    const partNumber = url.searchParams.get("partNumber");
    const fault = pick(op, partNumber ? Number(partNumber) : undefined);
    const hook = before;
    const record: ProxyRequest = { op, method: req.method ?? "", path: url.pathname, ...(fault ? { fault } : {}) };
    requests.push(record);

    if (fault === "500" || fault === "503") {
      // Drain the request first: the client must see the answer, not a broken pipe.
      req.resume();
      req.on("end", () => {
        const { code, message } = ERROR_BODY[fault];
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault</RequestId></Error>`;
        record.status = Number(fault);
        res.writeHead(Number(fault), { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
        res.end(req.method === "HEAD" ? undefined : body);
      });
      return;
    }
    if (fault === "stall") {
      // Read the request and never answer; the client's timeout has to end it.
      req.resume();
      return;
    }
    if (fault === "reset") {
      // Cut the connection in the middle of the request body (or right away without one).
      let seen = 0;
      const length = Number(req.headers["content-length"] ?? 0);
      if (length === 0) {
        req.socket.destroy();
        return;
      }
      req.on("data", (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= length / 2) req.socket.destroy();
      });
      return;
    }

    const upstreamReq = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        record.status = up.statusCode;
        if (fault === "cut") {
          const length = Number(up.headers["content-length"] ?? 0);
          let sent = 0;
          let cutting = false;
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.on("data", (c: Buffer) => {
            if (cutting) return;
            const room = Math.floor(length / 2) - sent;
            res.write(room < c.length ? c.subarray(0, Math.max(room, 0)) : c);
            sent += Math.min(c.length, Math.max(room, 0));
            if (sent >= Math.floor(length / 2)) {
              cutting = true;
              up.destroy();
              void (hook ? hook() : Promise.resolve()).finally(() => res.socket?.destroy());
            }
          });
          up.on("end", () => res.socket?.destroy());
          return;
        }
        if (fault === "corrupt") {
          const chunks: Buffer[] = [];
          up.on("data", (c: Buffer) => chunks.push(c));
          up.on("end", () => {
            const body = Buffer.concat(chunks);
            // Flip a byte in the middle: XML becomes unparsable or wrong, an object's bytes differ.
            if (body.length > 0) body[Math.floor(body.length / 2)]! ^= 0x55;
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(body);
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstreamReq.on("error", () => res.destroy());
    req.pipe(upstreamReq);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    set(faults) {
      plan = faults.map((f) => ({ ...f, left: f.times ?? 1 }));
    },
    random(options) {
      randomPick = options ? randomFaultPicker(options) : undefined;
    },
    injected: () => counts.total,
    counts: () => structuredClone(counts),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
