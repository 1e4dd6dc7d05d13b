/**
 * Alerts: after a backup run, POST its outcome as JSON to NOTIFY_URL — on failure only
 * (NOTIFY_ON=failure) or after every run as a heartbeat (NOTIFY_ON=always). fetch is passed
 * in, so the same code runs on Node and Workers and the tests talk to a real HTTP server.
 *
 * A notification never changes a backup's outcome: delivery runs in the background
 * (`notify` returns at once and never throws), is bounded (attempts × per-attempt timeout
 * plus the backoff between them), and a delivery that gives up is an error log line and
 * `lastNotify` in /status. The caller that must not exit before it is done (the CLI, a
 * Workers invocation via ctx.waitUntil) awaits `idle()`.
 *
 * NOTIFY_URL often is the credential (a healthchecks.io UUID, a Slack or Discord webhook
 * token in the path, a token in the query): only its origin is ever logged.
 */
import { VERSION as version } from "./version.js";
import { describeCause } from "./errors.js";
import { redact, type Logger } from "./log.js";

export type NotifyOn = "failure" | "always";
/** `json`: POST to NOTIFY_URL. `healthchecks`: the same body, to NOTIFY_URL/fail when the run failed. */
export type NotifyFormat = "json" | "healthchecks";

export interface NotifyConfig {
  url: string;
  on: NotifyOn;
  format: NotifyFormat;
}

/** A finished run, as the service records it for /status (`lastRun`). */
export interface RunOutcome {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  durationMs: number;
  key?: string;
  bytes?: number;
  gzipBytes?: number;
  /** On failure, why; on success, a warning (pruning old backups failed). */
  error?: { code: string; message: string };
}

/** The JSON body POSTed to NOTIFY_URL. */
export interface NotifyPayload {
  name: string;
  status: "ok" | "failed";
  key?: string;
  error?: { code: string; message: string };
  durationMs: number;
  startedAt: string;
  finishedAt: string;
  bytes?: number;
  gzipBytes?: number;
}

/** The last delivery, delivered or given up (`lastNotify` in /status). */
export interface NotifyResult {
  /** When the delivery ended. */
  at: string;
  /** Whether the receiver answered 2xx. */
  delivered: boolean;
  /** The status of the run it reported. */
  run: NotifyPayload["status"];
  attempts: number;
  /** The receiver's last HTTP status, if it answered. */
  httpStatus?: number;
  /** Why it was not delivered (never contains the URL's secret parts). */
  error?: string;
}

export interface Notifier {
  /** Starts delivering the run's outcome in the background if NOTIFY_ON asks for it. Never throws. */
  notify(name: string, run: RunOutcome): void;
  /** Resolves when every delivery started so far has ended. Never rejects. */
  idle(): Promise<void>;
  /** The last delivery's result, or null before the first one ended. */
  last(): NotifyResult | null;
}

export interface NotifierOptions {
  fetch: typeof fetch;
  logger: Logger;
  now: () => Date;
  /** Values masked in the body, as a last line of defence (errors are already secret-free). */
  secrets?: readonly string[];
  /** Tries per notification, the first included. */
  attempts?: number;
  /** Per attempt: no response within this long aborts it (and counts as a network error). */
  timeoutMs?: number;
  /** Wait before attempt n+1 after attempt n failed. */
  backoffMs?: (attempt: number) => number;
}

export const NOTIFY_ATTEMPTS = 3;
export const NOTIFY_TIMEOUT_MS = 10_000;
const backoff = (attempt: number) => 1000 * 2 ** (attempt - 1); // 1 s, 2 s: at most 33 s in all with the defaults
export const USER_AGENT = `sqlite-edge-backup/${version}`;

/** Whether NOTIFY_ON wants this run reported: failures, and successes that carry a warning, always do. */
export function shouldNotify(on: NotifyOn, run: RunOutcome): boolean {
  return on === "always" || !run.ok || run.error !== undefined;
}

export function notifyPayload(name: string, run: RunOutcome): NotifyPayload {
  return {
    name,
    status: run.ok ? "ok" : "failed",
    ...(run.key !== undefined ? { key: run.key } : {}),
    ...(run.error ? { error: { code: run.error.code, message: run.error.message } } : {}),
    durationMs: run.durationMs,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    ...(run.bytes !== undefined ? { bytes: run.bytes } : {}),
    ...(run.gzipBytes !== undefined ? { gzipBytes: run.gzipBytes } : {}),
  };
}

/** Where the POST goes: healthchecks.io signals a failure by the ping URL + `/fail`. */
export function notifyTarget(config: NotifyConfig, status: NotifyPayload["status"]): string {
  if (config.format !== "healthchecks" || status === "ok") return config.url;
  const u = new URL(config.url);
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/fail`;
  return u.toString();
}

/** The URL as it may be logged: its origin only (path and query may be the credential). */
export function describeNotifyUrl(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname === "/" && !u.search ? u.origin : `${u.origin}/…`;
  } catch {
    return "[invalid url]";
  }
}

/** The parts of NOTIFY_URL that may be a credential, for log redaction. */
export function notifyUrlSecrets(url: string): string[] {
  const values = [url];
  try {
    const u = new URL(url);
    values.push(u.href, u.password, u.username, ...u.searchParams.values());
    // Tokens are long or contain digits; plain words such as "services" or "webhooks" are kept
    // so that masking does not blank them wherever they occur in logs.
    for (const segment of u.pathname.split("/")) if (segment.length >= 16 || (segment.length >= 8 && /\d/.test(segment))) values.push(segment);
  } catch {
    // an invalid URL is rejected by the config; the whole string above is masked anyway
  }
  return values.filter((v) => v.length >= 4);
}

export function createNotifier(config: NotifyConfig, options: NotifierOptions): Notifier {
  const attempts = options.attempts ?? NOTIFY_ATTEMPTS;
  const timeoutMs = options.timeoutMs ?? NOTIFY_TIMEOUT_MS;
  const backoffMs = options.backoffMs ?? backoff;
  const secrets = [...(options.secrets ?? []), ...notifyUrlSecrets(config.url)];
  const to = describeNotifyUrl(config.url);
  const log = options.logger.child({ notify: to });
  // Called without a receiver: workerd's fetch rejects an object as `this` ("Illegal invocation").
  const fetchFn = options.fetch;
  const pending = new Set<Promise<void>>();
  let last: NotifyResult | null = null;

  async function deliver(name: string, run: RunOutcome): Promise<void> {
    const payload = notifyPayload(name, run);
    const body = redact(JSON.stringify(payload), secrets);
    const target = notifyTarget(config, payload.status);
    const ended = (fields: Omit<NotifyResult, "at" | "run">): NotifyResult => ({ at: options.now().toISOString(), run: payload.status, ...fields });
    for (let attempt = 1; ; attempt++) {
      const answer = await post(target, body);
      if (answer.ok) {
        last = ended({ delivered: true, attempts: attempt, httpStatus: answer.httpStatus });
        log.info("notification sent", { name, status: payload.status, attempts: attempt, httpStatus: answer.httpStatus });
        return;
      }
      const error = redact(answer.error, secrets);
      if (!answer.retry || attempt >= attempts) {
        last = ended({ delivered: false, attempts: attempt, ...(answer.httpStatus ? { httpStatus: answer.httpStatus } : {}), error });
        log.error("notification failed", { name, status: payload.status, attempts: attempt, error });
        return;
      }
      const delayMs = backoffMs(attempt);
      log.warn("notification attempt failed; retrying", { name, attempt, attempts, error, delayMs });
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }

  type Answer = { ok: true; httpStatus: number } | { ok: false; retry: boolean; httpStatus?: number; error: string };
  async function post(target: string, body: string): Promise<Answer> {
    try {
      const res = await fetchFn(target, {
        method: "POST",
        headers: { "Content-Type": "application/json", "User-Agent": USER_AGENT },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // The answer's body is not used; release the connection.
      await res.body?.cancel().catch(() => undefined);
      if (res.ok) return { ok: true, httpStatus: res.status };
      // 4xx other than 429 means the URL or the request is wrong: sending it again will not help.
      return { ok: false, retry: res.status >= 500 || res.status === 429, httpStatus: res.status, error: `the receiver answered HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, retry: true, error: describeFetchError(err, timeoutMs) };
    }
  }

  return {
    notify(name, run) {
      try {
        if (!shouldNotify(config.on, run)) return;
        const delivery = deliver(name, run).catch((err: unknown) => {
          log.error("notification failed", { name, error: redact(err instanceof Error ? err.message : String(err), secrets) });
        });
        pending.add(delivery);
        void delivery.finally(() => pending.delete(delivery));
      } catch (err) {
        log.error("notification not sent", { name, error: redact(err instanceof Error ? err.message : String(err), secrets) });
      }
    },
    async idle() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
    last: () => last,
  };
}

/** A network-level failure in words; fetch's own message ("fetch failed") hides the cause. */
function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return `no answer within ${timeoutMs / 1000} s`;
  return `could not reach the receiver: ${describeCause(err)}`;
}
