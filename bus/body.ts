import { InvalidArgumentError } from "../schemas/errors";
import { BinaryLayouts, decodeBinary, encodeBinary, fitsLayout, isBinaryMeta } from "../schemas/codec";

/**
 * The body both transports carry: `u32 metaLength | meta (JSON, UTF-8) | payload`.
 * `meta` is the request or reply object; `payload` is raw object bytes, if any.
 */
export interface Body {
  readonly meta: Uint8Array;
  readonly payload: Uint8Array | undefined;
}

export const metaBytesMax = 1024 * 1024;

export function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value), "utf8");
}

export function decodeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch (e) {
    throw new InvalidArgumentError("not valid JSON", { cause: e });
  }
}

/**
 * A request's meta as a caller sends it: in its operation's binary layout
 * when it has one (schemas/codec.ts) and the request fits it, else JSON.
 */
export function encodeRequestMeta(name: string, request: unknown): Uint8Array {
  const layouts = BinaryLayouts[name];
  if (layouts && fitsLayout(layouts.request, request as Record<string, unknown>)) return encodeBinary(layouts.request, request as Record<string, unknown>);
  return encodeJson(request);
}

/** A request's meta as a server reads it: binary for an operation with a layout, else JSON. */
export function decodeRequestMeta(name: string, meta: Uint8Array): unknown {
  if (!isBinaryMeta(meta)) return decodeJson(meta);
  const layouts = BinaryLayouts[name];
  if (!layouts) throw new InvalidArgumentError(`${name.slice(0, 64)} has no binary layout; send its meta as JSON`);
  return decodeBinary(layouts.request, meta);
}

/** A reply's meta, in the form its request came in: binary when the request was and the reply fits its layout. */
export function encodeReplyMeta(name: string, requestWasBinary: boolean, reply: unknown): Uint8Array {
  const layouts = requestWasBinary ? BinaryLayouts[name] : undefined;
  if (layouts && fitsLayout(layouts.reply, reply as Record<string, unknown>)) return encodeBinary(layouts.reply, reply as Record<string, unknown>);
  return encodeJson(reply);
}

/** A reply's meta as a caller reads it. */
export function decodeReplyMeta(name: string, meta: Uint8Array): unknown {
  if (!isBinaryMeta(meta)) return decodeJson(meta);
  const layouts = BinaryLayouts[name];
  if (!layouts) throw new InvalidArgumentError(`a binary reply to ${name.slice(0, 64)}, which has no binary layout`);
  return decodeBinary(layouts.reply, meta);
}

/** Encodes a body in one buffer (NATS messages). */
export function encodeBody(meta: Uint8Array, payload?: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + meta.byteLength + (payload?.byteLength ?? 0));
  out.writeUInt32BE(meta.byteLength, 0);
  out.set(meta, 4);
  if (payload) out.set(payload, 4 + meta.byteLength);
  return out;
}

/** Splits a body without copying. Throws InvalidArgument on a malformed one. */
export function decodeBody(data: Uint8Array): Body {
  if (data.byteLength < 4) throw new InvalidArgumentError(`body of ${data.byteLength} bytes is shorter than its header`);
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const metaLength = view.readUInt32BE(0);
  if (metaLength > metaBytesMax || 4 + metaLength > data.byteLength) {
    throw new InvalidArgumentError(`body declares ${metaLength} bytes of meta, has ${data.byteLength - 4}`);
  }
  const meta = view.subarray(4, 4 + metaLength);
  const payload = data.byteLength > 4 + metaLength ? view.subarray(4 + metaLength) : undefined;
  return { meta, payload };
}
