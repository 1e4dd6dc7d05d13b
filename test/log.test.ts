import { describe, expect, it } from "vitest";
import { BackupError } from "../src/errors.js";
import { jsonLogger, redact, silentLogger, throttle, type JsonLoggerOptions, type Level } from "../src/log.js";

const NOW = new Date("2026-11-23T10:42:36.123Z");

function capture(options: Partial<JsonLoggerOptions> = {}) {
  const lines: { line: string; level: Level }[] = [];
  const logger = jsonLogger({ now: () => NOW, ...options, write: (line, level) => lines.push({ line, level }) });
  const parsed = () => lines.map((l) => JSON.parse(l.line) as Record<string, unknown>);
  return { logger, lines, parsed };
}

describe("jsonLogger", () => {
  it("writes one JSON object per call with time, level, msg and fields", () => {
    const { logger, lines, parsed } = capture();
    logger.info("backup done", { key: "backups/app/x", bytes: 4096, nested: { ok: true } });
    logger.warn("slow", { ms: 1200 });
    expect(lines).toHaveLength(2);
    expect(parsed()[0]).toEqual({
      time: NOW.toISOString(),
      level: "info",
      msg: "backup done",
      key: "backups/app/x",
      bytes: 4096,
      nested: { ok: true },
    });
    expect(parsed()[1]).toEqual({ time: NOW.toISOString(), level: "warn", msg: "slow", ms: 1200 });
    expect(lines.map((l) => l.level)).toEqual(["info", "warn"]);
  });

  it("keeps every line on one line, even with newlines in the message and fields", () => {
    const { logger, lines, parsed } = capture();
    logger.error("line 1\nline 2\r\n", { detail: "a\nb" });
    expect(lines[0]!.line).not.toMatch(/[\r\n]/);
    expect(parsed()[0]).toMatchObject({ msg: "line 1\nline 2\r\n", detail: "a\nb" });
  });

  it("uses the real clock by default", () => {
    const lines: string[] = [];
    const before = Date.now();
    jsonLogger({ write: (l) => lines.push(l) }).info("x");
    const t = Date.parse((JSON.parse(lines[0]!) as { time: string }).time);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it.each<[Level | undefined, Level[]]>([
    [undefined, ["info", "warn", "error"]],
    ["debug", ["debug", "info", "warn", "error"]],
    ["info", ["info", "warn", "error"]],
    ["warn", ["warn", "error"]],
    ["error", ["error"]],
  ])("level %s writes %j", (level, expected) => {
    const { logger, lines } = capture(level ? { level } : {});
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(lines.map((l) => l.level)).toEqual(expected);
    expect(lines.map((l) => (JSON.parse(l.line) as { level: string }).level)).toEqual(expected);
  });

  it("child loggers add their fields, nest, and keep the parent unchanged", () => {
    const { logger, parsed } = capture();
    const child = logger.child({ run: "r1", name: "app" });
    const grandchild = child.child({ step: "upload", name: "override" });
    child.info("a");
    grandchild.info("b", { part: 3 });
    grandchild.info("c", { step: "verify" });
    logger.info("d");
    const [a, b, c, d] = parsed();
    expect(a).toMatchObject({ msg: "a", run: "r1", name: "app" });
    expect(a).not.toHaveProperty("step");
    expect(b).toMatchObject({ msg: "b", run: "r1", name: "override", step: "upload", part: 3 });
    expect(c).toMatchObject({ msg: "c", step: "verify" });
    expect(d).toEqual({ time: NOW.toISOString(), level: "info", msg: "d" });
  });

  it("child loggers keep the level filter and the secrets", () => {
    const { logger, lines } = capture({ level: "warn", secrets: ["child-secret-1"] });
    const child = logger.child({ c: 1 });
    child.info("dropped");
    child.warn("token child-secret-1");
    expect(lines).toHaveLength(1);
    expect(lines[0]!.line).not.toContain("child-secret-1");
  });

  it("masks secrets in the message, field values and field names", () => {
    const secret = "s3cr3t-VALUE-xyz";
    const { logger, lines } = capture({ secrets: [secret] });
    logger.info(`auth with ${secret}`, { header: `Bearer ${secret}`, [secret]: 1, list: [secret, secret] });
    const line = lines[0]!.line;
    expect(line).not.toContain(secret);
    expect(line.split("[redacted]").length - 1).toBe(5);
    expect(() => JSON.parse(line)).not.toThrow();
  });

  it("masks secrets containing quotes and backslashes, as they appear JSON-escaped", () => {
    const secrets = ['pa"ss-word', "back\\slash-key", 'both\\"mixed'];
    const { logger, lines } = capture({ secrets });
    logger.info("values", { a: secrets[0], b: `x ${secrets[1]} y`, c: secrets[2] });
    const line = lines[0]!.line;
    for (const s of secrets) {
      expect(line).not.toContain(s);
      expect(line).not.toContain(JSON.stringify(s).slice(1, -1));
    }
    expect(JSON.parse(line)).toMatchObject({ a: "[redacted]", b: "x [redacted] y", c: "[redacted]" });
  });

  it("serializes an Error as {code?, message} without the stack", () => {
    const { logger, lines, parsed } = capture();
    const plain = new Error("plain failure");
    const typed = new BackupError("UPLOAD_FAILED", "upload failed: 503", 502);
    const sys = Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT", errno: -2, path: "/x" });
    logger.error("failed", { err: plain, typed, nested: { sys, list: [plain] } });
    expect(parsed()[0]).toMatchObject({
      err: { message: "plain failure" },
      typed: { code: "UPLOAD_FAILED", message: "upload failed: 503" },
      nested: { sys: { code: "ENOENT", message: "ENOENT: no such file" }, list: [{ message: "plain failure" }] },
    });
    const fields = parsed()[0]!;
    expect(Object.keys(fields.err as object)).toEqual(["message"]);
    expect(Object.keys(fields.typed as object).sort()).toEqual(["code", "message"]);
    expect(Object.keys((fields.nested as { sys: object }).sys).sort()).toEqual(["code", "message"]);
    expect(lines[0]!.line).not.toContain("stack");
    expect(lines[0]!.line).not.toContain("at ");
  });

  it("masks a secret inside an Error message", () => {
    const { logger, lines } = capture({ secrets: ["leaky-secret-1"] });
    logger.error("x", { err: new Error("request to ?token=leaky-secret-1 failed") });
    expect(lines[0]!.line).not.toContain("leaky-secret-1");
  });

  it("silentLogger writes nothing and its children are silent too", () => {
    expect(() => {
      silentLogger.error("x");
      silentLogger.child({ a: 1 }).info("y");
    }).not.toThrow();
    expect(silentLogger.child({})).toBe(silentLogger);
  });
});

describe("redact", () => {
  it("replaces every occurrence of every secret", () => {
    expect(redact("a KEY1-abc b KEY1-abc c KEY2-xyz", ["KEY1-abc", "KEY2-xyz"])).toBe(
      "a [redacted] b [redacted] c [redacted]",
    );
  });

  it("replaces the JSON-escaped form of a secret", () => {
    const secret = 'x"y\\z\n1';
    const line = JSON.stringify({ v: secret, w: `pre ${secret} post` });
    const out = redact(line, [secret]);
    expect(out).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(JSON.parse(out)).toEqual({ v: "[redacted]", w: "pre [redacted] post" });
  });

  it("treats secrets literally, not as patterns", () => {
    expect(redact("aaaa a.b* a.b*c", ["a.b*"])).toBe("aaaa [redacted] [redacted]c");
    expect(redact("$&$& text", ["$&$&"])).toBe("[redacted] text");
  });

  it("leaves text without secrets unchanged", () => {
    expect(redact('{"msg":"hello"}', ["not-present-1"])).toBe('{"msg":"hello"}');
    expect(redact("anything", [])).toBe("anything");
  });

  it("masks a secret that contains another secret, whatever their order", () => {
    const out = redact("x abcd-LONG-TAIL y", ["abcd", "abcd-LONG-TAIL"]);
    expect(out).not.toContain("LONG-TAIL");
  });

  it("masks a secret with a quote inside a JSON-encoded field value", () => {
    const secret = 'pa"ss-word';
    const lines: string[] = [];
    jsonLogger({ write: (l) => lines.push(l), secrets: [secret] }).info("req", { body: JSON.stringify({ key: secret }) });
    const decoded = JSON.parse(lines[0]!) as { body: string };
    // The body, once decoded from the line, holds the secret in its (single) JSON-escaped form.
    expect(decoded.body).not.toContain(JSON.stringify(secret).slice(1, -1));
  });
});

describe("throttle", () => {
  function setup(intervalMs: number) {
    let t = 1_000_000;
    const reported: number[] = [];
    const tick = throttle<number>(intervalMs, () => t, (v) => reported.push(v));
    return { tick, reported, advance: (ms: number) => (t += ms) };
  }

  it("reports the first value, then at most once per interval", () => {
    const { tick, reported, advance } = setup(1000);
    tick(1); // reported: first
    advance(400);
    tick(2);
    advance(599);
    tick(3); // 999 ms after the last report: not yet
    advance(1);
    tick(4); // exactly 1000 ms: reported
    advance(10);
    tick(5);
    advance(5000);
    tick(6); // long gap: reported
    expect(reported).toEqual([1, 4, 6]);
  });

  it("reports at most once per interval over many calls with a steady clock", () => {
    const { tick, reported, advance } = setup(250);
    for (let i = 0; i < 1000; i++) {
      tick(i);
      advance(10);
    }
    // 10 s of calls every 10 ms with a 250 ms interval: one report every 25 calls.
    expect(reported).toHaveLength(40);
    for (let i = 1; i < reported.length; i++) expect(reported[i]! - reported[i - 1]!).toBe(25);
  });

  it("always reports a final value, even right after another report", () => {
    const { tick, reported, advance } = setup(1000);
    tick(1);
    advance(1);
    tick(2, true);
    tick(3, true);
    expect(reported).toEqual([1, 2, 3]);
  });

  it("a final report restarts the interval", () => {
    const { tick, reported, advance } = setup(1000);
    tick(1);
    advance(900);
    tick(2, true);
    advance(500); // 1400 ms after the first, 500 after the final
    tick(3);
    expect(reported).toEqual([1, 2]);
  });

  it("with a zero interval reports every value", () => {
    const { tick, reported } = setup(0);
    tick(1);
    tick(2);
    tick(3);
    expect(reported).toEqual([1, 2, 3]);
  });
});
