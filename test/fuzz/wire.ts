import { ErrorCode } from "../../schemas/errors";
import type { Prng } from "../../lib/prng";

/**
 * The two wire formats as the protocol documents them (bus/frame.ts,
 * bus/body.ts), written out again here: fuzz cases are built and mutated
 * byte by byte, and what a server must make of a byte stream is read with
 * this independent reading, not with the decoder under test.
 *
 *   frame: u32 length | u8 kind | u32 requestId | u8 nameLength | name | u32 metaLength | meta | payload
 *   body:  u32 metaLength | meta | payload
 */
export const FrameKinds = { Request: 1, Reply: 2, Error: 3 } as const;

/** Header bytes after the length field with an empty name and meta. */
const headerBytesMin = 10;
const nameBytesMax = 64;
/** Largest meta a NATS body may declare. */
export const bodyMetaBytesMax = 1024 * 1024;

export interface WireFrame {
  readonly kind: number;
  readonly requestId: number;
  readonly name: string;
  readonly meta: Buffer;
  readonly payload: Buffer | undefined;
}

/** Encodes a request frame; unlike the product's encoder it takes names of up to 255 bytes. */
export function requestFrame(requestId: number, name: string, meta: Uint8Array, payload?: Uint8Array): Buffer {
  const nameBytes = Buffer.from(name, "latin1").subarray(0, 255);
  const out = Buffer.allocUnsafe(14 + nameBytes.byteLength + meta.byteLength + (payload?.byteLength ?? 0));
  out.writeUInt32BE(out.byteLength - 4, 0);
  out.writeUInt8(FrameKinds.Request, 4);
  out.writeUInt32BE(requestId >>> 0, 5);
  out.writeUInt8(nameBytes.byteLength, 9);
  nameBytes.copy(out, 10);
  out.writeUInt32BE(meta.byteLength, 10 + nameBytes.byteLength);
  out.set(meta, 14 + nameBytes.byteLength);
  if (payload) out.set(payload, 14 + nameBytes.byteLength + meta.byteLength);
  return out;
}

/**
 * Changes one header field of an encoded frame (or cuts it): the length
 * prefix (too big, too small, zero, off by a few), the kind, the request id,
 * the name length or the meta length, or a random header byte.
 */
export function mutateFrame(frame: Buffer, rng: Prng, limits: FrameLimits): { bytes: Buffer; note: string } {
  const out = Buffer.from(frame);
  const length = out.readUInt32BE(0);
  const nameLength = out.readUInt8(9);
  const metaAt = 10 + nameLength;
  switch (rng.below(8)) {
    case 0: {
      const v = rng.pick([limits.refused + 1 + rng.below(1000), limits.refused + 1, 0xffff_ffff, 0x8000_0000]);
      out.writeUInt32BE(v >>> 0, 0);
      return { bytes: out, note: `length ${v} (too big)` };
    }
    case 1: {
      const v = rng.pick([0, 1, 4, 9, headerBytesMin]);
      out.writeUInt32BE(v, 0);
      return { bytes: out, note: `length ${v} (short)` };
    }
    case 2: {
      const v = Math.max(0, length + rng.pick([-3, -2, -1, 1, 2, 7, 100]));
      out.writeUInt32BE(v, 0);
      return { bytes: out, note: `length ${v} instead of ${length}` };
    }
    case 3: {
      const v = rng.pick([0, 2, 3, 4, 127, 255]);
      out.writeUInt8(v, 4);
      return { bytes: out, note: `kind ${v}` };
    }
    case 4: {
      const v = rng.pick([Math.min(255, nameLength + 1), nameBytesMax + 1, 255, Math.max(0, nameLength - 1), 0]);
      out.writeUInt8(v, 9);
      return { bytes: out, note: `name length ${v} instead of ${nameLength}` };
    }
    case 5: {
      if (metaAt + 4 > out.byteLength) return { bytes: out, note: "unchanged" };
      const meta = out.readUInt32BE(metaAt);
      const v = rng.pick([meta + 1, meta + 1000, 0xffff_ffff, Math.max(0, meta - 1), 0]) >>> 0;
      out.writeUInt32BE(v, metaAt);
      return { bytes: out, note: `meta length ${v} instead of ${meta}` };
    }
    case 6: {
      const at = rng.below(Math.min(out.byteLength, metaAt + 4));
      out[at] = rng.u32() & 0xff;
      return { bytes: out, note: `header byte ${at} set to ${out[at]}` };
    }
    default: {
      const cut = rng.below(out.byteLength);
      return { bytes: out.subarray(0, cut), note: `cut to ${cut} of ${out.byteLength} bytes` };
    }
  }
}

/**
 * A server's frame length limit as far as a client can know it: frames up to
 * `accepted` are read, declared lengths over `refused` are TooLarge, and in
 * between the server may do either (its exact limit is its own business).
 */
export interface FrameLimits {
  readonly accepted: number;
  readonly refused: number;
}

/** What a server must make of a stream of frames. */
export interface StreamReading {
  /** Complete, well-formed frames of a known kind, in order, up to the first violation. */
  readonly frames: readonly WireFrame[];
  /** The first framing violation: the server must send an error frame with this code and close. */
  readonly violation: ErrorCode | undefined;
  /** A frame declared a length between the limits: what the server does from there is not known. */
  readonly uncertain: boolean;
  /** Bytes of an incomplete frame at the end (the server keeps waiting for it). */
  readonly partialBytes: number;
  /** Bytes read up to the last complete frame. */
  readonly consumed: number;
}

/**
 * Reads frames from `bytes` as the protocol requires of the decoder: a
 * declared length over the limit is TooLarge as soon as the length field is
 * in, a length shorter than the header, an unknown kind, or a name or meta
 * running past the frame is InvalidArgument. (That a client may send request
 * frames only is checked after decoding, by the caller.) `framesMax` stops
 * after that many frames.
 */
export function readFrames(bytes: Buffer, limits: FrameLimits, framesMax = Infinity): StreamReading {
  const frames: WireFrame[] = [];
  let at = 0;
  const result = (violation: ErrorCode | undefined, partialBytes: number, uncertain = false): StreamReading => ({ frames, violation, uncertain, partialBytes, consumed: at });
  while (frames.length < framesMax) {
    const left = bytes.byteLength - at;
    if (left === 0) return result(undefined, 0);
    if (left < 4) return result(undefined, left);
    const length = bytes.readUInt32BE(at);
    if (length > limits.refused) return result(ErrorCode.TooLarge, 0);
    if (length > limits.accepted) return result(undefined, 0, true);
    if (length < headerBytesMin) return result(ErrorCode.InvalidArgument, 0);
    if (left < 4 + length) return result(undefined, left);
    const f = bytes.subarray(at, at + 4 + length);
    const kind = f.readUInt8(4);
    if (kind !== FrameKinds.Request && kind !== FrameKinds.Reply && kind !== FrameKinds.Error) return result(ErrorCode.InvalidArgument, 0);
    const nameLength = f.readUInt8(9);
    if (nameLength > nameBytesMax || 14 + nameLength > f.byteLength) return result(ErrorCode.InvalidArgument, 0);
    const metaLength = f.readUInt32BE(10 + nameLength);
    const metaAt = 14 + nameLength;
    if (metaAt + metaLength > f.byteLength) return result(ErrorCode.InvalidArgument, 0);
    frames.push({
      kind,
      requestId: f.readUInt32BE(5),
      name: f.toString("latin1", 10, 10 + nameLength),
      meta: f.subarray(metaAt, metaAt + metaLength),
      payload: f.byteLength > metaAt + metaLength ? f.subarray(metaAt + metaLength) : undefined,
    });
    at += 4 + length;
  }
  return result(undefined, 0);
}

/** Decodes one frame a server sent (replies and errors), or why it is not one. */
export function readServerFrames(bytes: Buffer): { frames: WireFrame[]; rest: Buffer; bad?: string } {
  const frames: WireFrame[] = [];
  let at = 0;
  for (;;) {
    if (bytes.byteLength - at < 4) break;
    const length = bytes.readUInt32BE(at);
    if (length < headerBytesMin) return { frames, rest: Buffer.alloc(0), bad: `a frame of length ${length}` };
    if (bytes.byteLength - at < 4 + length) break;
    const f = bytes.subarray(at, at + 4 + length);
    const nameLength = f.readUInt8(9);
    const metaAt = 14 + nameLength;
    if (metaAt > f.byteLength) return { frames, rest: Buffer.alloc(0), bad: `a name of ${nameLength} bytes overruns its frame` };
    const metaLength = f.readUInt32BE(10 + nameLength);
    if (metaAt + metaLength > f.byteLength) return { frames, rest: Buffer.alloc(0), bad: `a meta of ${metaLength} bytes overruns its frame` };
    frames.push({
      kind: f.readUInt8(4),
      requestId: f.readUInt32BE(5),
      name: f.toString("latin1", 10, 10 + nameLength),
      meta: f.subarray(metaAt, metaAt + metaLength),
      payload: f.byteLength > metaAt + metaLength ? f.subarray(metaAt + metaLength) : undefined,
    });
    at += 4 + length;
  }
  return { frames, rest: bytes.subarray(at) };
}


/** A body broken at the byte level: truncated, emptied, replaced, or with a meta length that lies. */
export function mutateBody(body: Buffer, rng: Prng): { bytes: Buffer; note: string } {
  switch (rng.below(5)) {
    case 0: return { bytes: rng.bytes(rng.size(512)), note: "random bytes" };
    case 1: {
      const n = rng.below(Math.min(body.byteLength, 4) + 1);
      return { bytes: body.subarray(0, n), note: `truncated to ${n} bytes` };
    }
    case 2: {
      const n = rng.below(body.byteLength + 1);
      return { bytes: body.subarray(0, n), note: `cut to ${n} of ${body.byteLength} bytes` };
    }
    default: {
      const out = Buffer.from(body.byteLength >= 4 ? body : Buffer.alloc(4));
      const meta = out.readUInt32BE(0);
      const v = rng.pick([meta + 1, meta + rng.int(2, 1 << 16), Math.max(0, meta - rng.int(1, 8)), 0, bodyMetaBytesMax + 1, 0xffff_ffff]) >>> 0;
      out.writeUInt32BE(v, 0);
      return { bytes: out, note: `meta length ${v} instead of ${meta}` };
    }
  }
}

/** Splits a body as bus/body.ts documents it; undefined when it is not one. */
export function splitBody(body: Buffer): { meta: Buffer; payload: Buffer | undefined } | undefined {
  if (body.byteLength < 4) return undefined;
  const metaLength = body.readUInt32BE(0);
  if (metaLength > bodyMetaBytesMax || 4 + metaLength > body.byteLength) return undefined;
  return { meta: body.subarray(4, 4 + metaLength), payload: body.byteLength > 4 + metaLength ? body.subarray(4 + metaLength) : undefined };
}

/** Splits bytes into up to `pieces` chunks at random boundaries. */
export function chunked(bytes: Buffer, rng: Prng, pieces: number): Buffer[] {
  if (bytes.byteLength === 0) return [];
  const cuts = new Set<number>();
  for (let i = 1; i < pieces; i++) cuts.add(1 + rng.below(Math.max(1, bytes.byteLength - 1)));
  const sorted = [...cuts].filter((c) => c < bytes.byteLength).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of sorted) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  out.push(bytes.subarray(from));
  return out;
}
