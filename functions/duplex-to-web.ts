/**
 * A Node byte duplex (a zlib stream) as a web { readable, writable } pair that holds at most
 * `queueBytes` on its writable side.
 *
 * Why not Duplex.toWeb: Node 20's adapter gives the web writable a queue of
 * `writableHighWaterMark` *chunks* (16384 for a byte stream), so a download feeding a slower
 * gunzip queued nearly the whole compressed object: reading back a 2.5 GiB database's backup
 * grew the process by 1 GiB. Lowering the duplex's high-water mark bounds that queue but makes
 * the duplex wait for every chunk (4.8 s instead of ~3 s reading back 256 MiB). Here the web side
 * counts bytes and the duplex keeps its own buffer.
 */
import { once } from "node:events";
import { Readable, type Duplex } from "node:stream";

export const DUPLEX_QUEUE_BYTES = 1024 * 1024;

export function duplexToWeb(duplex: Duplex, queueBytes = DUPLEX_QUEUE_BYTES): ReadableWritablePair<Uint8Array, Uint8Array> {
  const readable = Readable.toWeb(duplex) as ReadableStream<Uint8Array>;
  const writable = new WritableStream<Uint8Array>(
    {
      async write(chunk) {
        // events.once rejects when the duplex emits "error" first (e.g. a corrupt gzip).
        if (!duplex.write(chunk)) await once(duplex, "drain");
      },
      async close() {
        const finished = once(duplex, "finish");
        duplex.end();
        await finished;
      },
      abort(reason) {
        duplex.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: queueBytes }),
  );
  return { readable, writable };
}
