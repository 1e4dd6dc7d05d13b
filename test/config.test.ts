import { beforeAll, describe, expect, it } from "vitest";
import {
  deriveName,
  parseConfig,
  redactedConfig,
  secretsOf,
  type Config,
  type Env,
  type SourceSpec,
} from "../src/config.js";
import { BackupError } from "../src/errors.js";

const DEFAULTS = { maxBytes: 4_294_967_296 };
const BASE: Env = { BACKUP_SOURCE: "/data/app.db", S3_BUCKET: "my-bucket" };

function parse(env: Env, defaults = DEFAULTS): Config {
  return parseConfig(env, defaults);
}

/** Parse, expect a CONFIG_INVALID BackupError, return it. */
function configError(env: Env, defaults = DEFAULTS): BackupError {
  let thrown: unknown;
  try {
    parseConfig(env, defaults);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, "parseConfig should have thrown").toBeInstanceOf(BackupError);
  const err = thrown as BackupError;
  expect(err.code).toBe("CONFIG_INVALID");
  return err;
}

/** Everything a thrown error exposes as text. */
function exposed(err: BackupError): string {
  return `${err.message}\n${String(err.stack)}\n${JSON.stringify(err)}`;
}

describe("parseConfig defaults", () => {
  const config = parse(BASE);

  it("uses the contract's default for every optional variable", () => {
    expect(config.s3.region).toBe("us-east-1");
    expect(config.s3.prefix).toBe("backups/");
    expect(config.maxCount).toBe(7);
    expect(config.keep).toEqual({ daily: 0, weekly: 0, monthly: 0 });
    expect(config.linkTtlSeconds).toBe(900);
    expect(config.gzipLevel).toBe(6);
    expect(config.check).toBe("auto");
    expect(config.verify).toBe("head");
    expect(config.schedule).toBe("0 3 * * *");
    expect(config.port).toBe(8787);
    expect(config.host).toBe("127.0.0.1");
  });

  it("leaves the optional secrets and the endpoint unset", () => {
    expect(config.apiKey).toBeUndefined();
    expect(config.s3.endpoint).toBeUndefined();
    expect(config.s3.accessKeyId).toBeUndefined();
    expect(config.s3.secretAccessKey).toBeUndefined();
  });

  it("takes MAX_BYTES from the runtime default when unset", () => {
    expect(parse(BASE, { maxBytes: 4_294_967_296 }).maxBytes).toBe(4_294_967_296);
    expect(parse(BASE, { maxBytes: 100_000_000 }).maxBytes).toBe(100_000_000);
  });

  it("defaults S3_FORCE_PATH_STYLE to true iff S3_ENDPOINT is set", () => {
    expect(config.s3.forcePathStyle).toBe(false);
    const withEndpoint = parse({
      ...BASE,
      S3_ENDPOINT: "http://127.0.0.1:9000",
      S3_ACCESS_KEY_ID: "minioadmin",
      S3_SECRET_ACCESS_KEY: "minioadmin-secret",
    });
    expect(withEndpoint.s3.forcePathStyle).toBe(true);
    expect(withEndpoint.s3.endpoint).toBe("http://127.0.0.1:9000");
  });

  it("treats empty and blank strings as unset", () => {
    const blank: Env = {
      ...BASE,
      BACKUP_SOURCE_HEADERS: "",
      BACKUP_NAME: "",
      S3_ENDPOINT: "",
      S3_REGION: "",
      S3_PREFIX: "",
      S3_ACCESS_KEY_ID: "",
      S3_SECRET_ACCESS_KEY: "  ",
      S3_FORCE_PATH_STYLE: "",
      MAX_COUNT: "",
      KEEP_DAILY: "",
      KEEP_WEEKLY: " ",
      KEEP_MONTHLY: "",
      API_KEY: "",
      LINK_TTL_SECONDS: " ",
      GZIP_LEVEL: "",
      CHECK: "",
      SCHEDULE: "",
      VERIFY: "",
      MAX_BYTES: "",
      PORT: "",
      HOST: "",
      READ_ATTEMPTS: "",
      S3_MAX_ATTEMPTS: "",
      S3_TIMEOUT_SECONDS: "",
    };
    expect(parse(blank)).toEqual(config);
  });

  it("treats an empty BACKUP_SOURCE as missing", () => {
    const err = configError({ ...BASE, BACKUP_SOURCE: "" });
    expect(err.message).toContain("BACKUP_SOURCE");
  });
});

describe("parseConfig good values", () => {
  type Case = [variable: string, value: string, read: (c: Config) => unknown, expected: unknown];
  const cases: Case[] = [
    ["S3_REGION", "auto", (c) => c.s3.region, "auto"],
    ["S3_REGION", "eu-west-3", (c) => c.s3.region, "eu-west-3"],
    ["S3_BUCKET", "my.bucket_1-x", (c) => c.s3.bucket, "my.bucket_1-x"],
    ["S3_PREFIX", "db/backups/", (c) => c.s3.prefix, "db/backups/"],
    ["S3_PREFIX", "db/backups", (c) => c.s3.prefix, "db/backups/"],
    ["S3_PREFIX", "x", (c) => c.s3.prefix, "x/"],
    ["S3_FORCE_PATH_STYLE", "true", (c) => c.s3.forcePathStyle, true],
    ["S3_FORCE_PATH_STYLE", "1", (c) => c.s3.forcePathStyle, true],
    ["S3_FORCE_PATH_STYLE", "false", (c) => c.s3.forcePathStyle, false],
    ["MAX_COUNT", "1", (c) => c.maxCount, 1],
    ["MAX_COUNT", " 30 ", (c) => c.maxCount, 30],
    ["MAX_COUNT", "100000", (c) => c.maxCount, 100_000],
    ["KEEP_DAILY", "0", (c) => c.keep, { daily: 0, weekly: 0, monthly: 0 }],
    ["KEEP_DAILY", "7", (c) => c.keep, { daily: 7, weekly: 0, monthly: 0 }],
    ["KEEP_WEEKLY", " 4 ", (c) => c.keep, { daily: 0, weekly: 4, monthly: 0 }],
    ["KEEP_MONTHLY", "12", (c) => c.keep, { daily: 0, weekly: 0, monthly: 12 }],
    ["KEEP_MONTHLY", "10000", (c) => c.keep.monthly, 10_000],
    ["API_KEY", "0123456789abcdef", (c) => c.apiKey, "0123456789abcdef"],
    ["LINK_TTL_SECONDS", "1", (c) => c.linkTtlSeconds, 1],
    ["LINK_TTL_SECONDS", "604800", (c) => c.linkTtlSeconds, 604_800],
    ["GZIP_LEVEL", "1", (c) => c.gzipLevel, 1],
    ["GZIP_LEVEL", "9", (c) => c.gzipLevel, 9],
    ["READ_ATTEMPTS", "1", (c) => c.readAttempts, 1],
    ["LOCK", "", (c) => c.lock, { mode: "auto", ttlMs: 300_000 }],
    ["LOCK", "Best-Effort", (c) => c.lock.mode, "best-effort"],
    ["LOCK", "off", (c) => c.lock.mode, "off"],
    ["LOCK_TTL_SECONDS", "30", (c) => c.lock.ttlMs, 30_000],
    ["SKIP_UNCHANGED", "", (c) => c.skipUnchanged, false],
    ["SKIP_UNCHANGED", "true", (c) => c.skipUnchanged, true],
    ["CORS_ORIGINS", "", (c) => c.corsOrigins, []],
    ["CORS_ORIGINS", "https://a.example.com, http://127.0.0.1:5173", (c) => c.corsOrigins, ["https://a.example.com", "http://127.0.0.1:5173"]],
    ["CORS_ORIGINS", "*", (c) => c.corsOrigins, ["*"]],
    ["READ_ATTEMPTS", "100", (c) => c.readAttempts, 100],
    ["S3_MAX_ATTEMPTS", "1", (c) => c.s3.maxAttempts, 1],
    ["S3_MAX_ATTEMPTS", "", (c) => c.s3.maxAttempts, 4],
    ["S3_TIMEOUT_SECONDS", "5", (c) => c.s3.timeoutMs, 5000],
    ["S3_TIMEOUT_SECONDS", "", (c) => c.s3.timeoutMs, 60_000],
    ["CHECK", "none", (c) => c.check, "none"],
    ["CHECK", "structure", (c) => c.check, "structure"],
    ["CHECK", " Structure ", (c) => c.check, "structure"],
    ["CHECK", "quick", (c) => c.check, "quick"],
    ["CHECK", "full", (c) => c.check, "full"],
    ["CHECK", "FULL", (c) => c.check, "full"],
    ["VERIFY", "full", (c) => c.verify, "full"],
    ["VERIFY", "head", (c) => c.verify, "head"],
    ["SCHEDULE", "*/15 * * * *", (c) => c.schedule, "*/15 * * * *"],
    ["SCHEDULE", "0 0 3 * * *", (c) => c.schedule, "0 0 3 * * *"],
    ["SCHEDULE", "30 2 * * MON-FRI", (c) => c.schedule, "30 2 * * MON-FRI"],
    ["MAX_BYTES", "512", (c) => c.maxBytes, 512],
    ["MAX_BYTES", "100000000", (c) => c.maxBytes, 100_000_000],
    ["MAX_BYTES", "4294967295", (c) => c.maxBytes, 4_294_967_295],
    ["MAX_BYTES", "4294967296", (c) => c.maxBytes, 4_294_967_296], // streamed backups hold no image: no 4 GiB ceiling
    ["PORT", "1", (c) => c.port, 1],
    ["PORT", "3000", (c) => c.port, 3000],
    ["PORT", "65535", (c) => c.port, 65_535],
    ["HOST", "0.0.0.0", (c) => c.host, "0.0.0.0"],
    ["BACKUP_NAME", "my.db_1-x", (c) => c.name, "my.db_1-x"],
    ["BACKUP_NAME", "a", (c) => c.name, "a"],
    ["BACKUP_NAME", "a".repeat(63), (c) => c.name, "a".repeat(63)],
  ];

  it.each(cases)("%s=%j is accepted", (variable, value, read, expected) => {
    expect(read(parse({ ...BASE, [variable]: value }))).toEqual(expected);
  });

  it("accepts an endpoint with both keys and keeps them", () => {
    const c = parse({
      ...BASE,
      S3_ENDPOINT: "https://acc.r2.cloudflarestorage.com",
      S3_REGION: "auto",
      S3_ACCESS_KEY_ID: "AKIDEXAMPLE",
      S3_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG",
      S3_FORCE_PATH_STYLE: "false",
    });
    expect(c.s3).toEqual({
      endpoint: "https://acc.r2.cloudflarestorage.com",
      region: "auto",
      bucket: "my-bucket",
      prefix: "backups/",
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG",
      forcePathStyle: false,
      maxAttempts: 4,
      timeoutMs: 60_000,
    });
  });

  it("accepts both keys without an endpoint (AWS)", () => {
    const c = parse({ ...BASE, S3_ACCESS_KEY_ID: "AKIDEXAMPLE", S3_SECRET_ACCESS_KEY: "secret-key-value" });
    expect(c.s3.accessKeyId).toBe("AKIDEXAMPLE");
    expect(c.s3.secretAccessKey).toBe("secret-key-value");
    expect(c.s3.forcePathStyle).toBe(false);
  });

  it("S3_FORCE_PATH_STYLE=true works without an endpoint, false overrides the endpoint default", () => {
    expect(parse({ ...BASE, S3_FORCE_PATH_STYLE: "true" }).s3.forcePathStyle).toBe(true);
    const c = parse({
      ...BASE,
      S3_ENDPOINT: "http://127.0.0.1:9000",
      S3_ACCESS_KEY_ID: "k",
      S3_SECRET_ACCESS_KEY: "secret-key",
      S3_FORCE_PATH_STYLE: "0",
    });
    expect(c.s3.forcePathStyle).toBe(false);
  });
});

describe("parseConfig bad values", () => {
  const URL_SOURCE: Env = { ...BASE, BACKUP_SOURCE: "https://example.com/db/app.db" };
  type Case = [variable: string, value: string, env?: Env];
  const cases: Case[] = [
    ["MAX_COUNT", "abc"],
    ["MAX_COUNT", "0"],
    ["MAX_COUNT", "-1"],
    ["MAX_COUNT", "1.5"],
    ["MAX_COUNT", "1e3"],
    ["MAX_COUNT", "100001"],
    ["KEEP_DAILY", "-1"],
    ["KEEP_DAILY", "10001"],
    ["KEEP_DAILY", "seven"],
    ["KEEP_WEEKLY", "1.5"],
    ["KEEP_WEEKLY", "4w"],
    ["KEEP_MONTHLY", "1e2"],
    ["KEEP_MONTHLY", "99999"],
    ["LINK_TTL_SECONDS", "0"],
    ["LINK_TTL_SECONDS", "604801"],
    ["LINK_TTL_SECONDS", "15m"],
    ["LINK_TTL_SECONDS", "ten"],
    ["GZIP_LEVEL", "0"],
    ["GZIP_LEVEL", "10"],
    ["GZIP_LEVEL", "best"],
    ["READ_ATTEMPTS", "0"],
    ["LOCK", "yes"],
    ["LOCK_TTL_SECONDS", "0"],
    ["LOCK_TTL_SECONDS", "86401"],
    ["SKIP_UNCHANGED", "maybe"],
    ["CORS_ORIGINS", "https://a.example.com/path"],
    ["CORS_ORIGINS", "a.example.com"],
    ["CORS_ORIGINS", "ftp://a.example.com"],
    ["READ_ATTEMPTS", "101"],
    ["READ_ATTEMPTS", "many"],
    ["S3_MAX_ATTEMPTS", "0"],
    ["S3_MAX_ATTEMPTS", "21"],
    ["S3_TIMEOUT_SECONDS", "0"],
    ["S3_TIMEOUT_SECONDS", "1.5"],
    ["CHECK", "fast"],
    ["CHECK", "integrity"],
    ["CHECK", "structural"],
    ["VERIFY", "x"],
    ["VERIFY", "none"],
    ["PORT", "0"],
    ["PORT", "65536"],
    ["PORT", "http"],
    ["S3_BUCKET", "My_Bucket"],
    ["S3_BUCKET", "-bucket"],
    ["S3_BUCKET", "b"],
    ["S3_BUCKET", "bucket/sub"],
    ["S3_BUCKET", "bucket name"],
    ["S3_BUCKET", "a".repeat(256)],
    ["S3_PREFIX", "/backups/"],
    ["S3_PREFIX", "../backups/"],
    ["S3_PREFIX", "a/../b/"],
    ["S3_PREFIX", "backups/.."],
    ["S3_PREFIX", "./backups/"],
    ["S3_PREFIX", "a//b/"],
    ["S3_PREFIX", "back ups/"],
    ["S3_REGION", "US-EAST-1"],
    ["S3_REGION", "us east 1"],
    ["S3_FORCE_PATH_STYLE", "yes"],
    ["S3_FORCE_PATH_STYLE", "maybe"],
    ["BACKUP_NAME", "App"],
    ["BACKUP_NAME", "-app"],
    ["BACKUP_NAME", ".app"],
    ["BACKUP_NAME", "my app"],
    ["BACKUP_NAME", "a/b"],
    ["BACKUP_NAME", "../app"],
    ["BACKUP_NAME", "a".repeat(64)],
    ["BACKUP_SOURCE_HEADERS", "not json", URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", '{"X-API-Key":1}', URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", '{"X-API-Key":{"v":"x"}}', URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", '{"X-API-Key":null}', URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", '"just a string"', URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", "null", URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", "42", URL_SOURCE],
    ["BACKUP_SOURCE_HEADERS", '["a","b"]', URL_SOURCE],
    ["SCHEDULE", "0 3 * *"],
    ["SCHEDULE", "0 3 * * * * *"],
    ["SCHEDULE", "every day"],
    ["SCHEDULE", "0 3 * * $"],
    ["SCHEDULE", "0;3 * * * *"],
    ["MAX_BYTES", "1125899906842625"], // one past 2^50
    ["MAX_BYTES", "99999999999999999999"],
    ["MAX_BYTES", "511"],
    ["MAX_BYTES", "0"],
    ["MAX_BYTES", "-1"],
    ["MAX_BYTES", "1.5"],
    ["MAX_BYTES", "1e9"],
    ["MAX_BYTES", "100MB"],
    ["S3_ENDPOINT", "minio:9000"],
    ["S3_ENDPOINT", "not a url"],
    ["S3_ENDPOINT", "ftp://127.0.0.1:9000"],
    ["S3_ENDPOINT", "http://"],
    ["API_KEY", "too-short"],
    ["BACKUP_SOURCE", "ftp://example.com/app.db"],
    ["BACKUP_SOURCE", "sftp://example.com/app.db"],
    ["BACKUP_SOURCE", "s3://bucket-only"],
    ["BACKUP_SOURCE", "s3://bucket/"],
    ["BACKUP_SOURCE", "s3:///key.db"],
    ["BACKUP_SOURCE", "file://remote-host/app.db"],
    ["BACKUP_SOURCE", "http://"],
  ];

  it.each(cases)("%s=%j is rejected with a message naming the variable", (variable, value, env) => {
    const err = configError({ ...(env ?? BASE), [variable]: value });
    expect(err.message).toContain(variable);
  });

  it("states the accepted range of numeric variables", () => {
    expect(configError({ ...BASE, LINK_TTL_SECONDS: "604801" }).message).toMatch(/LINK_TTL_SECONDS[^;]*1[^;]*604800/);
    expect(configError({ ...BASE, GZIP_LEVEL: "10" }).message).toMatch(/GZIP_LEVEL[^;]*1[^;]*9/);
    for (const variable of ["KEEP_DAILY", "KEEP_WEEKLY", "KEEP_MONTHLY"]) {
      expect(configError({ ...BASE, [variable]: "10001" }).message).toMatch(new RegExp(`${variable} [^;]*0[^;]*10000`));
    }
    expect(configError({ ...BASE, CHECK: "fast" }).message).toContain('CHECK must be one of auto, none, structure, quick, full (got "fast")');
  });

  it("rejects an endpoint without credentials, naming both key variables", () => {
    const err = configError({ ...BASE, S3_ENDPOINT: "http://127.0.0.1:9000" });
    expect(err.message).toContain("S3_ACCESS_KEY_ID");
    expect(err.message).toContain("S3_SECRET_ACCESS_KEY");
  });

  it("rejects an endpoint with only one of the keys", () => {
    const a = configError({ ...BASE, S3_ENDPOINT: "http://127.0.0.1:9000", S3_ACCESS_KEY_ID: "AKIDEXAMPLE" });
    expect(a.message).toContain("S3_SECRET_ACCESS_KEY");
    const b = configError({ ...BASE, S3_ENDPOINT: "http://127.0.0.1:9000", S3_SECRET_ACCESS_KEY: "only-the-secret-here" });
    expect(b.message).toContain("S3_ACCESS_KEY_ID");
  });

  it.each([
    ["S3_ACCESS_KEY_ID", "AKIDEXAMPLE"],
    ["S3_SECRET_ACCESS_KEY", "only-the-secret-here"],
  ])("rejects only %s of the key pair without an endpoint", (variable, value) => {
    const err = configError({ ...BASE, [variable]: value });
    expect(err.message).toContain("S3_ACCESS_KEY_ID");
    expect(err.message).toContain("S3_SECRET_ACCESS_KEY");
  });

  it("rejects a missing S3_BUCKET, naming it", () => {
    const err = configError({ BACKUP_SOURCE: "/data/app.db" });
    expect(err.message).toContain("S3_BUCKET");
  });

  it("rejects BACKUP_SOURCE set to undefined, naming it", () => {
    const err = configError({ BACKUP_SOURCE: undefined, S3_BUCKET: "my-bucket" });
    expect(err.message).toContain("BACKUP_SOURCE");
  });

  it("rejects an absent BACKUP_SOURCE (key not in env) as CONFIG_INVALID naming it", () => {
    const err = configError({ S3_BUCKET: "my-bucket" });
    expect(err.message).toContain("BACKUP_SOURCE");
  });

  it("rejects an empty environment as CONFIG_INVALID", () => {
    const err = configError({});
    expect(err.message).toContain("BACKUP_SOURCE");
    expect(err.message).toContain("S3_BUCKET");
  });

  it("names a URL source with no file name as needing BACKUP_NAME", () => {
    const err = configError({ ...BASE, BACKUP_SOURCE: "https://example.com/" });
    expect(err.message).toContain("BACKUP_NAME");
  });

  it("lists several problems at once", () => {
    const err = configError({ ...BASE, GZIP_LEVEL: "0", CHECK: "fast", PORT: "0", MAX_BYTES: "abc", S3_PREFIX: "/x" });
    for (const variable of ["GZIP_LEVEL", "CHECK", "PORT", "MAX_BYTES", "S3_PREFIX"]) {
      expect(err.message).toContain(variable);
    }
  });

  it("lists schema problems together with source/bucket/credential problems", () => {
    const err = configError({ BACKUP_SOURCE: "ftp://example.com/app.db", GZIP_LEVEL: "0", S3_ACCESS_KEY_ID: "AKIDEXAMPLE" });
    for (const variable of ["GZIP_LEVEL", "BACKUP_SOURCE", "S3_BUCKET", "S3_SECRET_ACCESS_KEY"]) {
      expect(err.message).toContain(variable);
    }
  });
});

describe("parseConfig never echoes secrets", () => {
  it("API_KEY too short: named, value absent", () => {
    const secret = "Sh0rt$ecret";
    const err = configError({ ...BASE, API_KEY: secret });
    expect(err.message).toContain("API_KEY");
    expect(exposed(err)).not.toContain(secret);
  });

  it("BACKUP_SOURCE_HEADERS invalid JSON or non-string values: named, values absent", () => {
    const secret = "hdr-secret-VALUE-42";
    for (const raw of [
      `{"X-API-Key":"${secret}"`,
      `{"X-API-Key":"${secret}","Retries":3}`,
      `["${secret}"]`,
      `"${secret}"`,
      secret,
    ]) {
      const err = configError({ ...BASE, BACKUP_SOURCE: "https://example.com/app.db", BACKUP_SOURCE_HEADERS: raw });
      expect(err.message).toContain("BACKUP_SOURCE_HEADERS");
      expect(exposed(err)).not.toContain(secret);
    }
  });

  it("S3_SECRET_ACCESS_KEY without its key id: value absent", () => {
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY";
    for (const env of [
      { ...BASE, S3_SECRET_ACCESS_KEY: secret },
      { ...BASE, S3_SECRET_ACCESS_KEY: secret, S3_ENDPOINT: "http://127.0.0.1:9000" },
    ]) {
      expect(exposed(configError(env))).not.toContain(secret);
    }
  });

  it("no secret appears when other variables are invalid", () => {
    const secrets = { S3_SECRET_ACCESS_KEY: "s3-secret-9f8e7d6c", API_KEY: "api-secret-0123456789", header: "hdr-secret-abcdef" };
    const err = configError({
      ...BASE,
      BACKUP_SOURCE: "https://example.com/app.db",
      BACKUP_SOURCE_HEADERS: JSON.stringify({ "X-API-Key": secrets.header }),
      S3_ACCESS_KEY_ID: "AKIDEXAMPLE",
      S3_SECRET_ACCESS_KEY: secrets.S3_SECRET_ACCESS_KEY,
      API_KEY: secrets.API_KEY,
      GZIP_LEVEL: "11",
      MAX_COUNT: "zero",
      S3_ENDPOINT: "nope",
    });
    const text = exposed(err);
    for (const s of Object.values(secrets)) expect(text).not.toContain(s);
  });

  it("an invalid source URL's password is not echoed", () => {
    const err = configError({ ...BASE, BACKUP_SOURCE: "ftp://backup:url-pass-SECRET@example.com/app.db" });
    expect(err.message).toContain("BACKUP_SOURCE");
    expect(exposed(err)).not.toContain("url-pass-SECRET");
  });
});

describe("BACKUP_SOURCE parsing", () => {
  const cases: [raw: string, source: SourceSpec][] = [
    ["/data/app.db", { kind: "file", path: "/data/app.db" }],
    ["./relative/app.db", { kind: "file", path: "./relative/app.db" }],
    ["app.db", { kind: "file", path: "app.db" }],
    ["file:///var/lib/app/app.db", { kind: "file", path: "/var/lib/app/app.db" }],
    ["file:/var/lib/app/app.db", { kind: "file", path: "/var/lib/app/app.db" }],
    ["file://localhost/var/lib/app/app.db", { kind: "file", path: "/var/lib/app/app.db" }],
    ["file:///data/My%20App.sqlite3", { kind: "file", path: "/data/My App.sqlite3" }],
    ["s3://src-bucket/dbs/prod/main.sqlite", { kind: "s3", bucket: "src-bucket", key: "dbs/prod/main.sqlite" }],
    ["s3://src-bucket/main.db", { kind: "s3", bucket: "src-bucket", key: "main.db" }],
    ["https://example.com/files/shop.db", { kind: "url", url: "https://example.com/files/shop.db", headers: {} }],
    ["http://127.0.0.1:8080/app.db?x=1", { kind: "url", url: "http://127.0.0.1:8080/app.db?x=1", headers: {} }],
  ];

  it.each(cases)("%s", (raw, source) => {
    expect(parse({ ...BASE, BACKUP_SOURCE: raw }).source).toEqual(source);
  });

  it("attaches BACKUP_SOURCE_HEADERS to a URL source", () => {
    const c = parse({
      ...BASE,
      BACKUP_SOURCE: "https://example.com/files/shop.db",
      BACKUP_SOURCE_HEADERS: '{"X-API-Key":"k-123456","Accept":"application/octet-stream"}',
    });
    expect(c.source).toEqual({
      kind: "url",
      url: "https://example.com/files/shop.db",
      headers: { "X-API-Key": "k-123456", Accept: "application/octet-stream" },
    });
  });
});

describe("BACKUP_NAME derivation", () => {
  const cases: [source: SourceSpec, name: string | undefined][] = [
    [{ kind: "file", path: "/data/My App.sqlite3" }, "my-app"],
    [{ kind: "file", path: "/data/app.db" }, "app"],
    [{ kind: "file", path: "app.db" }, "app"],
    [{ kind: "file", path: "/data/archive.v2.db" }, "archive.v2"],
    [{ kind: "file", path: "/data/noext" }, "noext"],
    [{ kind: "file", path: "C:\\data\\Shop.DB" }, "shop"],
    [{ kind: "file", path: "/data/__Weird  Name.db" }, "weird-name"],
    [{ kind: "file", path: `/data/${"x".repeat(100)}.db` }, "x".repeat(63)],
    [{ kind: "file", path: "/data/.db" }, undefined],
    [{ kind: "s3", bucket: "b", key: "dbs/prod/Main.sqlite" }, "main"],
    [{ kind: "url", url: "https://example.com/files/shop.db?token=abc", headers: {} }, "shop"],
    [{ kind: "url", url: "https://example.com/", headers: {} }, undefined],
  ];

  it.each(cases)("%j → %s", (source, name) => {
    expect(deriveName(source)).toBe(name);
  });

  it("parseConfig derives the name from file, s3 and URL sources", () => {
    expect(parse({ ...BASE, BACKUP_SOURCE: "/data/My App.sqlite3" }).name).toBe("my-app");
    expect(parse({ ...BASE, BACKUP_SOURCE: "s3://src/dbs/prod/main.sqlite" }).name).toBe("main");
    expect(parse({ ...BASE, BACKUP_SOURCE: "https://example.com/files/shop.db?x=1" }).name).toBe("shop");
  });

  it("an explicit BACKUP_NAME wins over the derived one", () => {
    expect(parse({ ...BASE, BACKUP_SOURCE: "/data/My App.sqlite3", BACKUP_NAME: "prod" }).name).toBe("prod");
  });
});

describe("redactedConfig and secretsOf", () => {
  const SECRETS = {
    s3: "s3-secret-KEY-value",
    api: "api-key-0123456789abcdef",
    header: "header-secret-value",
    urlPassword: "url-pass-word",
    urlToken: "query-token-xyz",
  };
  const full = parse({
    ...BASE,
    BACKUP_SOURCE: `https://reader:${SECRETS.urlPassword}@example.com/files/shop.db?token=${SECRETS.urlToken}`,
    BACKUP_SOURCE_HEADERS: JSON.stringify({ "X-API-Key": SECRETS.header }),
    S3_ENDPOINT: "http://127.0.0.1:9000",
    S3_ACCESS_KEY_ID: "AKIDEXAMPLE",
    S3_SECRET_ACCESS_KEY: SECRETS.s3,
    API_KEY: SECRETS.api,
  });

  it("redactedConfig contains no secret but keeps the non-secret settings", () => {
    const r = redactedConfig(full);
    const text = JSON.stringify(r);
    for (const s of Object.values(SECRETS)) expect(text).not.toContain(s);
    expect(r.apiKey).toBe("[redacted]");
    expect(r.s3).toMatchObject({
      secretAccessKey: "[redacted]",
      accessKeyId: "AKIDEXAMPLE",
      bucket: "my-bucket",
      endpoint: "http://127.0.0.1:9000",
      prefix: "backups/",
    });
    expect(r.source).toMatchObject({ kind: "url", headers: ["X-API-Key"] });
    const url = new URL((r.source as { url: string }).url);
    expect(url.host).toBe("example.com");
    expect(url.pathname).toBe("/files/shop.db");
    expect(url.username).toBe("");
    expect(url.password).toBe("");
    expect(r).toMatchObject({ name: "shop", maxCount: 7, gzipLevel: 6, port: 8787 });
  });

  it("redactedConfig marks absent secrets as absent, and keeps a file source as is", () => {
    const r = redactedConfig(parse(BASE));
    expect(r.apiKey).toBeUndefined();
    expect((r.s3 as { secretAccessKey?: unknown }).secretAccessKey).toBeUndefined();
    expect(r.source).toEqual({ kind: "file", path: "/data/app.db" });
  });

  it("secretsOf lists every secret value and nothing public", () => {
    const secrets = secretsOf(full);
    expect(new Set(secrets)).toEqual(new Set(Object.values(SECRETS)));
    expect(secrets).not.toContain("AKIDEXAMPLE");
    expect(secrets).not.toContain("my-bucket");
  });

  it("secretsOf is empty for a config without secrets", () => {
    expect(secretsOf(parse(BASE))).toEqual([]);
    expect(secretsOf(parse({ ...BASE, BACKUP_SOURCE: "https://example.com/app.db" }))).toEqual([]);
  });
});

describe("NOTIFY_URL, NOTIFY_ON, NOTIFY_FORMAT", () => {
  const TOKEN = "0f8b7c9e-3d2a-4b1c-9e8f-7a6b5c4d3e2f";
  const URL_WITH_TOKEN = `https://hc-ping.com/${TOKEN}?rid=run-token-1234`;

  it("no NOTIFY_URL: no alerts, whatever NOTIFY_ON says", () => {
    expect(parse(BASE).notify).toBeUndefined();
    expect(parse({ ...BASE, NOTIFY_ON: "always" }).notify).toBeUndefined();
  });

  it("defaults: NOTIFY_ON=failure and NOTIFY_FORMAT=json; values are case-insensitive", () => {
    expect(parse({ ...BASE, NOTIFY_URL: URL_WITH_TOKEN }).notify).toEqual({ url: URL_WITH_TOKEN, on: "failure", format: "json" });
    expect(parse({ ...BASE, NOTIFY_URL: URL_WITH_TOKEN, NOTIFY_ON: "Always" }).notify?.on).toBe("always");
  });

  it("NOTIFY_FORMAT=healthchecks defaults NOTIFY_ON to always (a check needs every run); an explicit failure is kept", () => {
    expect(parse({ ...BASE, NOTIFY_URL: URL_WITH_TOKEN, NOTIFY_FORMAT: "healthchecks" }).notify).toEqual({ url: URL_WITH_TOKEN, on: "always", format: "healthchecks" });
    expect(parse({ ...BASE, NOTIFY_URL: URL_WITH_TOKEN, NOTIFY_FORMAT: "healthchecks", NOTIFY_ON: "failure" }).notify?.on).toBe("failure");
  });

  it("rejects a non-http(s) NOTIFY_URL naming it, without echoing the value", () => {
    const err = configError({ ...BASE, NOTIFY_URL: `ftp://alerts.example.com/${TOKEN}` });
    expect(err.message).toMatch(/NOTIFY_URL must be an http\(s\) URL/);
    expect(exposed(err)).not.toContain(TOKEN);
    expect(exposed(configError({ ...BASE, NOTIFY_URL: `not a url ${TOKEN}` }))).not.toContain(TOKEN);
  });

  it("rejects unknown NOTIFY_ON and NOTIFY_FORMAT values, naming the accepted ones", () => {
    const err = configError({ ...BASE, NOTIFY_URL: URL_WITH_TOKEN, NOTIFY_ON: "sometimes", NOTIFY_FORMAT: "slack" });
    expect(err.message).toContain('NOTIFY_ON must be one of failure, always (got "sometimes")');
    expect(err.message).toContain('NOTIFY_FORMAT must be one of json, healthchecks (got "slack")');
    expect(exposed(err)).not.toContain(TOKEN);
  });

  it("the URL's token parts are secrets; redactedConfig keeps only its origin", () => {
    const config = parse({ ...BASE, NOTIFY_URL: URL_WITH_TOKEN });
    expect(secretsOf(config)).toEqual(expect.arrayContaining([URL_WITH_TOKEN, TOKEN, "run-token-1234"]));
    const text = JSON.stringify(redactedConfig(config));
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain("run-token-1234");
    expect(redactedConfig(config).notify).toEqual({ url: "https://hc-ping.com/…", on: "failure", format: "json" });
  });
});

describe("AGE_RECIPIENTS, AGE_IDENTITY, AGE_IDENTITY_FILE", () => {
  let keys: { identity: string; recipient: string }[] = [];
  beforeAll(async () => {
    const { generateX25519Identity, identityToRecipient } = await import("age-encryption");
    keys = await Promise.all([0, 1].map(async () => {
      const identity = await generateX25519Identity();
      return { identity, recipient: await identityToRecipient(identity) };
    }));
  });

  it("unset: no encryption, no identity", () => {
    const c = parse(BASE);
    expect(c.ageRecipients).toBeUndefined();
    expect(c.ageIdentity).toBeUndefined();
    expect(c.ageIdentityFile).toBeUndefined();
    expect(parse({ ...BASE, AGE_RECIPIENTS: "  ", AGE_IDENTITY: "" }).ageRecipients).toBeUndefined();
  });

  it("takes one or more recipients (commas, spaces, newlines), an identity or an identity file", () => {
    const [a, b] = keys as [{ identity: string; recipient: string }, { identity: string; recipient: string }];
    expect(parse({ ...BASE, AGE_RECIPIENTS: a.recipient }).ageRecipients).toEqual([a.recipient]);
    expect(parse({ ...BASE, AGE_RECIPIENTS: `${a.recipient},\n ${b.recipient}` }).ageRecipients).toEqual([a.recipient, b.recipient]);
    expect(parse({ ...BASE, AGE_IDENTITY: ` ${a.identity} ` }).ageIdentity).toBe(a.identity);
    expect(parse({ ...BASE, AGE_IDENTITY_FILE: "/etc/backup/key.txt" }).ageIdentityFile).toBe("/etc/backup/key.txt");
  });

  it("rejects bad recipients naming the variable and the expected form, never echoing an entry", () => {
    const [a, b] = keys as [{ identity: string; recipient: string }, { identity: string; recipient: string }];
    const err = configError({ ...BASE, AGE_RECIPIENTS: `${a.recipient} ${b.identity} age1nope` });
    expect(err.message).toContain("AGE_RECIPIENTS entry 2 of 3 is a secret key (an identity), not a recipient");
    expect(err.message).toContain("AGE_RECIPIENTS entry 3 of 3 is not an age X25519 public key: age1 followed by 58 characters");
    expect(exposed(err)).not.toContain(b.identity);
    expect(exposed(err)).not.toContain("age1nope");
    expect(configError({ ...BASE, AGE_RECIPIENTS: ", ," }).message).toContain("AGE_RECIPIENTS is empty: give one or more of an age X25519 public key");
  });

  it("rejects a malformed AGE_IDENTITY without echoing it (it is a secret), and both identity variables at once", () => {
    const [a] = keys as [{ identity: string; recipient: string }];
    const broken = `${a.identity.slice(0, -1)}${a.identity.endsWith("Q") ? "P" : "Q"}`;
    const err = configError({ ...BASE, AGE_IDENTITY: broken });
    expect(err.message).toContain("AGE_IDENTITY must be an age X25519 identity: AGE-SECRET-KEY-1 followed by 58 characters");
    expect(exposed(err)).not.toContain(broken.slice(16));
    expect(configError({ ...BASE, AGE_IDENTITY: a.identity, AGE_IDENTITY_FILE: "/k.txt" }).message).toContain(
      "AGE_IDENTITY and AGE_IDENTITY_FILE are both set: set one of them",
    );
  });

  it("AGE_IDENTITY is a secret: in secretsOf, redacted by redactedConfig; recipients are public and kept", () => {
    const [a, b] = keys as [{ identity: string; recipient: string }, { identity: string; recipient: string }];
    const config = parse({ ...BASE, AGE_IDENTITY: a.identity, AGE_RECIPIENTS: b.recipient });
    expect(secretsOf(config)).toContain(a.identity);
    expect(secretsOf(config)).not.toContain(b.recipient);
    const redacted = redactedConfig(config);
    expect(JSON.stringify(redacted)).not.toContain(a.identity);
    expect(redacted.ageIdentity).toBe("[redacted]");
    expect(redacted.ageRecipients).toEqual([b.recipient]);
  });
});
