/**
 * Backpressure for workerd's CompressionStream, which has none (nor has DecompressionStream, the
 * same code; gunzip is not paced yet: its consumer is faster than a download): its writable
 * side compresses each chunk as soon as it is written and keeps the output in a
 * native buffer until it is read (workerd src/workerd/api/streams/compression.c++: "This does
 * not yet implement any backpressure"). Piped into a slower consumer (the multipart upload),
 * the whole source was read and its gzip held there, outside the JS heap: a 301 MiB backup
 * grew workerd by 242 MiB, +0.8 MiB per MiB read (bench/workerd-results.md).
 *
 * pacedTransform feeds the compressor only when its output has been taken. Each pull of the
 * readable side first reads what the compressor holds, and writes the next input only when it
 * holds nothing. The compressor answers a read at once when it has output, but the answer
 * reaches JavaScript a turn later; so a read still unanswered one macrotask later means an
 * empty buffer, and without waiting that long after every chunk, up to FEED_BYTES are written
 * between two such checks (zlib keeps up to a block of input before it emits anything). A
 * read that does not fill its FEED_BYTES buffer took all there was, which is a check too. So
 * the compressor holds at most about FEED_BYTES of output, and input is taken only as fast as
 * output leaves: backpressure from the consumer reaches the source.
 *
 * Input arrives through `front`, a pipe whose write completes once the pump has taken the
 * chunk, so the writer upstream waits too. Join it to the stage before with a loop (`through`
 * in src/compress.ts), not pipeTo: workerd's pipeTo into a writable whose writes complete later
 * keeps two promises per chunk alive until the pipe ends (98 000 at 163 MiB read). On workerd
 * the front is an IdentityTransformStream, read with a BYOB reader into one reused buffer:
 * with it workerd's RSS grew by 102–133 MiB over a 1 GiB backup, with a TransformStream (the
 * default, which hands each chunk on) by 161–165 MiB (bench/workerd-memory.ts, three runs each).
 */

/** Input written to the compressor between two checks that it holds no output; also the read size. */
export const FEED_BYTES = 64 * 1024;

type Tagged = { output: ReadableStreamReadResult<Uint8Array> } | { input: ReadableStreamReadResult<Uint8Array> } | { idle: true };

const IDLE: Tagged = { idle: true };

export function pacedTransform(
  inner: ReadableWritablePair<Uint8Array, Uint8Array>,
  front: ReadableWritablePair<Uint8Array, Uint8Array> = new TransformStream<Uint8Array, Uint8Array>(),
  feedBytes = FEED_BYTES,
): ReadableWritablePair<Uint8Array, Uint8Array> {
  const writer = inner.writable.getWriter();
  const outByob = byobReader(inner.readable);
  const outReader = outByob ?? inner.readable.getReader();
  const inByob = byobReader(front.readable);
  const inReader = inByob ?? front.readable.getReader();
  /** The compressor's next output and the next input, each asked for once and kept until it comes. */
  let output: Promise<Tagged> | undefined;
  let input: Promise<Tagged> | undefined;
  /** Read buffers: input is copied by the compressor, so its buffer is read into again; output is handed on. */
  let inBuffer = new ArrayBuffer(feedBytes);
  let outBuffer = new ArrayBuffer(feedBytes);
  /** Input read but not yet written (a default reader's chunk larger than FEED_BYTES). */
  let rest: Uint8Array | undefined;
  let ended = false;
  /** Bytes written since the compressor was last seen holding no output. */
  let fedSinceEmpty = 0;

  const nextOutput = () =>
    (output ??= (outByob ? outByob.read(new Uint8Array(outBuffer)) : (outReader as ReadableStreamDefaultReader<Uint8Array>).read()).then(
      (r): Tagged => ({ output: r as ReadableStreamReadResult<Uint8Array> }),
    ));
  const nextInput = () =>
    (input ??= (rest ? Promise.resolve({ done: false as const, value: rest }) : inByob ? inByob.read(new Uint8Array(inBuffer)) : (inReader as ReadableStreamDefaultReader<Uint8Array>).read()).then(
      (r): Tagged => ({ input: r as ReadableStreamReadResult<Uint8Array> }),
    ));
  const macrotask = () => new Promise<Tagged>((resolve) => setTimeout(() => resolve(IDLE), 0));
  /** The output if its read has settled already, else IDLE (an answer may still be a turn away). */
  const settledNow = (p: Promise<Tagged>) => Promise.race([p, Promise.resolve(IDLE)]);
  const stop = (reason: unknown) =>
    Promise.all([
      writer.abort(reason).catch(() => undefined),
      outReader.cancel(reason).catch(() => undefined),
      // The writer upstream learns of it from its next write.
      inReader.cancel(reason).catch(() => undefined),
    ]);

  const readable = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          for (;;) {
            let next: Tagged;
            if (ended) next = await nextOutput();
            else if (fedSinceEmpty < feedBytes) next = await settledNow(nextOutput());
            else {
              next = await Promise.race([nextOutput(), macrotask()]);
              if ("idle" in next) fedSinceEmpty = 0; // unanswered for a macrotask: the compressor holds nothing
            }
            // No output for now: give the compressor the next input (or the end), unless output comes first.
            if ("idle" in next) next = await Promise.race([nextOutput(), nextInput()]);

            if ("output" in next) {
              output = undefined;
              const r = next.output;
              if (r.done) return controller.close();
              if (!outByob) return controller.enqueue(r.value);
              if (r.value.byteLength === feedBytes) {
                outBuffer = new ArrayBuffer(feedBytes);
                return controller.enqueue(r.value);
              }
              // A read that did not fill its buffer took all the compressor held. Hand on a copy of
              // the right size and read into the buffer again.
              fedSinceEmpty = 0;
              outBuffer = r.value.buffer as ArrayBuffer;
              return controller.enqueue(r.value.slice());
            }
            if ("input" in next) {
              input = undefined;
              const r = next.input;
              if (r.done) {
                ended = true;
                await writer.close();
                continue;
              }
              const chunk = r.value.byteLength > feedBytes ? r.value.subarray(0, feedBytes) : r.value;
              rest = r.value.byteLength > feedBytes ? r.value.subarray(feedBytes) : undefined;
              await writer.write(chunk);
              fedSinceEmpty += chunk.byteLength;
              // The compressor has copied it: its buffer is free for the next read.
              if (inByob) inBuffer = r.value.buffer as ArrayBuffer;
            }
          }
        } catch (err) {
          await stop(err);
          throw err;
        }
      },
      async cancel(reason) {
        await stop(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return { readable, writable: front.writable };
}

function byobReader(stream: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return (stream as ReadableStream<Uint8Array> & { getReader(o: { mode: "byob" }): ReadableStreamBYOBReader }).getReader({ mode: "byob" });
  } catch {
    return undefined;
  }
}
