/**
 * make-sample-db.ts — build the deterministic sample SQLite database bundled for the demo
 * (`npm start` without BACKUP_SOURCE) and for trying backups and restores by hand.
 *
 *   npx tsx scripts/make-sample-db.ts [out]      (default: sample/sample.db in the repo)
 *   npm run sample-db
 *
 * A small shop: customers, products, orders, order_items, events (JSON payloads) and
 * attachments (BLOBs), with foreign keys, indexes, a view and a trigger; about 3.5 MiB.
 * Every value comes from a seeded PRNG (mulberry32) and fixed timestamps, so running the
 * script twice with the same sql.js version gives byte-identical files.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import initSqlJs from "sql.js";
import type { Database, SqlValue } from "sql.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_OUT = resolve(REPO_ROOT, "sample", "sample.db");

const SEED = 0x5eed_2025;
/** 2025-01-01T00:00:00.000Z: every timestamp is this plus a PRNG-chosen offset. */
const EPOCH_MS = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;

const COUNTS = {
  customers: 2_000,
  products: 400,
  orders: 6_000,
  events: 7_000,
  attachments: 500,
} as const;

// ---------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: a tiny 32-bit PRNG; returns floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
  /** Skewed towards small values: a few customers and products get most of the orders. */
  skewed(max: number): number {
    return 1 + Math.floor(max * this.next() ** 2);
  }
}

// ---------------------------------------------------------------------------------------
// Vocabulary

const FIRST = ["Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger",
  "Radia", "Donald", "Hedy", "Tim", "Katherine", "Guido", "Sophie", "John", "Annie", "Niklaus",
  "Joan", "Bjarne", "Mary", "Yukihiro", "Lovelace", "Amara", "Chen", "Olu", "Ines", "Mateo"] as const;
const LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
  "Allen", "Dijkstra", "Perlman", "Knuth", "Lamarr", "Berners-Lee", "Johnson", "van Rossum", "Wilson",
  "McCarthy", "Easley", "Wirth", "Clarke", "Stroustrup", "Keller", "Matsumoto", "Okafor", "Silva",
  "Nakamura", "Novak", "Haddad", "Schmidt"] as const;
const COUNTRIES = ["DE", "FR", "GB", "US", "CA", "JP", "BR", "IN", "NG", "ES", "IT", "NL", "SE", "PL", "AU"] as const;
const CATEGORIES = ["books", "garden", "kitchen", "office", "outdoor", "tools", "toys", "audio"] as const;
const ADJECTIVES = ["Compact", "Sturdy", "Eco", "Classic", "Deluxe", "Portable", "Smart", "Quiet",
  "Heavy-duty", "Minimal", "Vintage", "Modular"] as const;
const NOUNS = ["Lamp", "Kettle", "Notebook", "Shovel", "Speaker", "Drill", "Backpack", "Planter",
  "Desk", "Puzzle", "Tent", "Headphones", "Chair", "Grinder", "Hammock"] as const;
const WORDS = ["reliable", "daily", "use", "designed", "for", "with", "a", "durable", "finish", "and",
  "easy", "care", "fits", "most", "spaces", "made", "from", "recycled", "materials", "the", "perfect",
  "gift", "tested", "by", "our", "team", "over", "many", "seasons", "includes", "two", "year", "warranty"] as const;
const STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded"] as const;
const EVENT_TYPES = ["page_view", "search", "add_to_cart", "checkout", "login", "logout"] as const;
const AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "Mozilla/5.0 (Macintosh) Safari/605.1.15",
  "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0", "Mozilla/5.0 (iPhone) Mobile Safari/604.1",
  "curl/8.5.0"] as const;
const ATTACHMENT_KINDS = [
  { ext: "png", mime: "image/png", magic: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { ext: "pdf", mime: "application/pdf", magic: [0x25, 0x50, 0x44, 0x46, 0x2d, 0x31, 0x2e, 0x37] },
  { ext: "jpg", mime: "image/jpeg", magic: [0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46] },
] as const;

// ---------------------------------------------------------------------------------------
// Schema

const SCHEMA = `
PRAGMA page_size = 4096;
PRAGMA foreign_keys = ON;

CREATE TABLE customers (
  id          INTEGER PRIMARY KEY,
  email       TEXT    NOT NULL UNIQUE,
  name        TEXT    NOT NULL,
  country     TEXT    NOT NULL CHECK (length(country) = 2),
  created_at  TEXT    NOT NULL,
  marketing   INTEGER NOT NULL DEFAULT 0 CHECK (marketing IN (0, 1))
);

CREATE TABLE products (
  id           INTEGER PRIMARY KEY,
  sku          TEXT    NOT NULL UNIQUE,
  name         TEXT    NOT NULL,
  category     TEXT    NOT NULL,
  price_cents  INTEGER NOT NULL CHECK (price_cents > 0),
  description  TEXT    NOT NULL,
  stock        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE orders (
  id           INTEGER PRIMARY KEY,
  customer_id  INTEGER NOT NULL REFERENCES customers (id),
  status       TEXT    NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
  created_at   TEXT    NOT NULL,
  total_cents  INTEGER NOT NULL DEFAULT 0,
  note         TEXT
);

CREATE TABLE order_items (
  order_id          INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  product_id        INTEGER NOT NULL REFERENCES products (id),
  quantity          INTEGER NOT NULL CHECK (quantity > 0),
  unit_price_cents  INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id)
) WITHOUT ROWID;

CREATE TABLE events (
  id           INTEGER PRIMARY KEY,
  customer_id  INTEGER REFERENCES customers (id),
  type         TEXT    NOT NULL,
  payload      TEXT    NOT NULL CHECK (json_valid(payload)),
  created_at   TEXT    NOT NULL
);

CREATE TABLE attachments (
  id          INTEGER PRIMARY KEY,
  order_id    INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  filename    TEXT    NOT NULL,
  mime_type   TEXT    NOT NULL,
  size        INTEGER NOT NULL,
  data        BLOB    NOT NULL
);

CREATE INDEX idx_orders_customer ON orders (customer_id, created_at);
CREATE INDEX idx_orders_status ON orders (status);
CREATE INDEX idx_order_items_product ON order_items (product_id);
CREATE INDEX idx_events_customer_time ON events (customer_id, created_at);
CREATE INDEX idx_events_type ON events (type);
CREATE INDEX idx_attachments_order ON attachments (order_id);
CREATE INDEX idx_products_category ON products (category, price_cents);

CREATE VIEW customer_summary AS
SELECT c.id, c.name, c.email, c.country,
       count(o.id)                        AS orders,
       coalesce(sum(o.total_cents), 0)    AS spent_cents,
       max(o.created_at)                  AS last_order_at
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id AND o.status NOT IN ('cancelled', 'refunded')
GROUP BY c.id;

CREATE TRIGGER order_items_total AFTER INSERT ON order_items
BEGIN
  UPDATE orders SET total_cents = total_cents + NEW.quantity * NEW.unit_price_cents
  WHERE id = NEW.order_id;
END;
`;

// ---------------------------------------------------------------------------------------
// Data

function isoAt(ms: number): string {
  return new Date(ms).toISOString();
}

function sentence(rng: Rng, min: number, max: number): string {
  const n = rng.int(min, max);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(rng.pick(WORDS));
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1) + ".";
}

function insertAll(db: Database, sql: string, rows: Iterable<SqlValue[]>): void {
  const stmt = db.prepare(sql);
  try {
    for (const row of rows) stmt.run(row);
  } finally {
    stmt.free();
  }
}

function* customers(rng: Rng): Generator<SqlValue[]> {
  for (let id = 1; id <= COUNTS.customers; id++) {
    const first = rng.pick(FIRST);
    const last = rng.pick(LAST);
    const local = `${first}.${last}`.toLowerCase().replace(/[^a-z.]/g, "");
    const domain = rng.pick(["example.com", "example.org", "example.net"]);
    const created = EPOCH_MS + rng.int(0, 180) * DAY_MS + rng.int(0, DAY_MS - 1);
    yield [id, `${local}.${id}@${domain}`, `${first} ${last}`, rng.pick(COUNTRIES), isoAt(created), rng.chance(0.3) ? 1 : 0];
  }
}

function* products(rng: Rng): Generator<SqlValue[]> {
  for (let id = 1; id <= COUNTS.products; id++) {
    const category = rng.pick(CATEGORIES);
    const sku = `${category.slice(0, 3).toUpperCase()}-${String(id).padStart(5, "0")}`;
    const name = `${rng.pick(ADJECTIVES)} ${rng.pick(NOUNS)}`;
    const description = `${sentence(rng, 8, 20)} ${sentence(rng, 8, 20)}`;
    yield [id, sku, name, category, rng.int(199, 49_999), description, rng.int(0, 500)];
  }
}

function* orders(rng: Rng): Generator<SqlValue[]> {
  for (let id = 1; id <= COUNTS.orders; id++) {
    const created = EPOCH_MS + 181 * DAY_MS + Math.floor(((id - 1) / COUNTS.orders) * 300 * DAY_MS) + rng.int(0, 3_600_000);
    const status = id > COUNTS.orders - 150 ? rng.pick(["pending", "paid"] as const) : rng.pick(STATUSES);
    const note = rng.chance(0.15) ? sentence(rng, 4, 12) : null;
    yield [id, rng.skewed(COUNTS.customers), status, isoAt(created), note];
  }
}

function* orderItems(rng: Rng, prices: readonly number[]): Generator<SqlValue[]> {
  for (let orderId = 1; orderId <= COUNTS.orders; orderId++) {
    const n = rng.int(1, 5);
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) {
      const productId = rng.skewed(COUNTS.products);
      if (seen.has(productId)) continue;
      seen.add(productId);
      const price = prices[productId - 1];
      if (price === undefined) throw new Error(`no price for product ${productId}`);
      yield [orderId, productId, rng.int(1, 4), price];
    }
  }
}

function eventPayload(rng: Rng, type: (typeof EVENT_TYPES)[number]): string {
  const base = { session: rng.int(0, 0xffffffff).toString(16).padStart(8, "0"), ua: rng.pick(AGENTS) };
  switch (type) {
    case "page_view":
      return JSON.stringify({ ...base, path: `/products/${rng.skewed(COUNTS.products)}`, ms: rng.int(20, 1_500), referrer: rng.chance(0.4) ? "https://search.example/" : null });
    case "search":
      return JSON.stringify({ ...base, q: `${rng.pick(ADJECTIVES)} ${rng.pick(NOUNS)}`.toLowerCase(), results: rng.int(0, 60), filters: { category: rng.pick(CATEGORIES) } });
    case "add_to_cart":
      return JSON.stringify({ ...base, product: rng.skewed(COUNTS.products), quantity: rng.int(1, 3) });
    case "checkout":
      return JSON.stringify({ ...base, items: rng.int(1, 5), payment: rng.pick(["card", "invoice", "paypal"]), coupon: rng.chance(0.1) ? "WELCOME10" : null });
    case "login":
    case "logout":
      return JSON.stringify({ ...base, method: rng.pick(["password", "passkey", "sso"]), ok: rng.chance(0.95) });
  }
}

function* events(rng: Rng): Generator<SqlValue[]> {
  for (let id = 1; id <= COUNTS.events; id++) {
    const type = rng.pick(EVENT_TYPES);
    const customer = rng.chance(0.2) ? null : rng.skewed(COUNTS.customers); // anonymous visitors
    const created = EPOCH_MS + 181 * DAY_MS + Math.floor(((id - 1) / COUNTS.events) * 300 * DAY_MS) + rng.int(0, 60_000);
    yield [id, customer, type, eventPayload(rng, type), isoAt(created)];
  }
}

function* attachments(rng: Rng): Generator<SqlValue[]> {
  for (let id = 1; id <= COUNTS.attachments; id++) {
    const kind = rng.pick(ATTACHMENT_KINDS);
    const size = rng.int(256, 2_048);
    const data = rng.bytes(size);
    data.set(kind.magic);
    const orderId = rng.int(1, COUNTS.orders);
    yield [id, orderId, `order-${orderId}-${id}.${kind.ext}`, kind.mime, size, data];
  }
}

// ---------------------------------------------------------------------------------------
// Main

function scalar(db: Database, sql: string): SqlValue {
  const value = db.exec(sql)[0]?.values[0]?.[0];
  if (value === undefined) throw new Error(`no result for: ${sql}`);
  return value;
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (arg === "-h" || arg === "--help") {
    console.log("usage: npx tsx scripts/make-sample-db.ts [out]   (default: sample/sample.db)");
    return;
  }
  const out = arg === undefined ? DEFAULT_OUT : resolve(arg);

  const SQL = await initSqlJs();
  const db = new SQL.Database();
  try {
    db.exec(SCHEMA);
    const rng = new Rng(SEED);

    db.exec("BEGIN");
    insertAll(db, "INSERT INTO customers (id, email, name, country, created_at, marketing) VALUES (?, ?, ?, ?, ?, ?)", customers(rng));
    insertAll(db, "INSERT INTO products (id, sku, name, category, price_cents, description, stock) VALUES (?, ?, ?, ?, ?, ?, ?)", products(rng));
    const prices = db.exec("SELECT price_cents FROM products ORDER BY id")[0]?.values.map(([p]) => Number(p)) ?? [];
    insertAll(db, "INSERT INTO orders (id, customer_id, status, created_at, note) VALUES (?, ?, ?, ?, ?)", orders(rng));
    insertAll(db, "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES (?, ?, ?, ?)", orderItems(rng, prices));
    insertAll(db, "INSERT INTO events (id, customer_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)", events(rng));
    insertAll(db, "INSERT INTO attachments (id, order_id, filename, mime_type, size, data) VALUES (?, ?, ?, ?, ?, ?)", attachments(rng));
    db.exec("COMMIT");

    db.exec("ANALYZE; VACUUM;");
    const fkProblems = db.exec("PRAGMA foreign_key_check");
    if (fkProblems.length > 0) throw new Error(`foreign key violations: ${JSON.stringify(fkProblems[0]?.values.slice(0, 5))}`);
    const integrity = scalar(db, "PRAGMA integrity_check");
    if (integrity !== "ok") throw new Error(`integrity_check: ${String(integrity)}`);

    const image = db.export();
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, image);
      renameSync(tmp, out);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }

    const tables = ["customers", "products", "orders", "order_items", "events", "attachments"] as const;
    const pageSize = Number(scalar(db, "PRAGMA page_size"));
    console.log(`${out}`);
    console.log(`  ${image.byteLength} bytes (${(image.byteLength / 1_048_576).toFixed(2)} MiB), page size ${pageSize}, ${image.byteLength / pageSize} pages, SQLite ${String(scalar(db, "SELECT sqlite_version()"))}`);
    for (const t of tables) console.log(`  ${t.padEnd(12)} ${String(scalar(db, `SELECT count(*) FROM ${t}`)).padStart(7)} rows`);
  } finally {
    db.close();
  }
}

main().catch((err: unknown) => {
  console.error(`make-sample-db: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
