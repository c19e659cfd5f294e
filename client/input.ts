import { InvalidArgumentError } from "../schemas/errors";

/*
 * Checks at the SDK's edge, for callers in plain JavaScript as much as in
 * TypeScript: a value of the wrong kind is a TypeError naming the argument
 * (before anything is sent); a value of the right kind that the store
 * refuses (a bad path, a bad range) is the store's typed error.
 */

/** How a value shows in a message: its type, or its class for an object. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name !== "" ? `a ${name}` : "an object";
}

/** A stream or other async iterable (what `putStream` takes, not `put`). */
function isStreamLike(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    (Symbol.asyncIterator in value || typeof (value as { pipe?: unknown }).pipe === "function");
}

/** The bytes of `data` (`what` names it in messages, e.g. `put(path, data): data`). */
export function bytesOf(data: unknown, what: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (isStreamLike(data)) throw new TypeError(`${what} is a stream (${kindOf(data)}); put takes bytes: use putStream(path, stream) to store a stream`);
  throw new TypeError(`${what} must be a Uint8Array, Buffer or string, not ${kindOf(data)}`);
}

/** A chunk of a stream given to putStream, as bytes. */
export function chunkBytes(chunk: unknown, index: number): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  throw new TypeError(`putStream(path, source): chunk ${index} of the source is ${kindOf(chunk)}; a source must yield Uint8Array, Buffer or string chunks (not object mode)`);
}

/** The source of putStream: an async iterable of chunks (a Readable, an async generator). */
export function checkSource(source: unknown): AsyncIterable<unknown> {
  if (source instanceof Uint8Array || typeof source === "string") {
    throw new TypeError(`putStream(path, source): source is ${kindOf(source)}, not a stream: use put(path, data) to store bytes`);
  }
  if (typeof source !== "object" || source === null || !(Symbol.asyncIterator in source)) {
    throw new TypeError(`putStream(path, source): source must be an async iterable of chunks (a Readable, an async generator), not ${kindOf(source)}; wrap an array with Readable.from`);
  }
  return source as AsyncIterable<unknown>;
}

/** `path` is a string (which paths the store takes is the shard's to say: InvalidArgument). */
export function checkPath(path: unknown, what: string): string {
  if (typeof path !== "string") throw new TypeError(`${what}: path must be a string, not ${kindOf(path)}`);
  return path;
}

/** An options argument is an object when given. */
export function checkOptions<T extends object>(options: T | undefined, what: string): T | undefined {
  if (options !== undefined && (typeof options !== "object" || options === null)) throw new TypeError(`${what}: options must be an object, not ${kindOf(options)}`);
  return options;
}

/** A byte offset, length or size: a whole number of bytes, 0 or more. */
export function checkByteCount(value: unknown, name: string, what: string): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what}: bad ${name} ${typeof value === "number" ? value : JSON.stringify(value) ?? String(value)}: a whole number of bytes, 0 or more`);
  }
}
