import type net from "node:net";
import { encodeFrameHead, frameHeadBytes, type FrameKind } from "./frame";

/** Bytes of a batch buffer: the frames written in one tick are encoded into it and leave in one write. */
const slabBytes = 64 * 1024;
/** Payloads up to this size are copied into the batch; larger ones go out as they are, not copied. */
export const inlinePayloadBytesMax = 16 * 1024;
/** Frames in one batch at most: a long burst reaches the peer early enough for it to start working while the rest is produced. */
export const framesPerBatchMax = 32;

/**
 * Writes frames to a socket in batches: every frame written in the same tick
 * (up to `framesPerBatchMax`) is encoded straight into one buffer, payloads of
 * up to `inlinePayloadBytesMax` included, and leaves in one write at the end
 * of the tick. A larger payload is not copied: the batch up to its head is
 * written, then the payload itself, with its `release` once it has left.
 *
 * Against a write (or a writev entry) per head and per payload, a small
 * request or reply costs no buffer of its own and one share of a system call.
 * Batches are carved from a 64 KiB buffer until it is used up, so a buffer is
 * allocated per 64 KiB of small frames, not per frame or per batch.
 */
export class FrameWriter {
  #slab: Buffer = Buffer.allocUnsafe(0);
  /** The current batch is `#slab[#start, #used)`. */
  #start = 0;
  #used = 0;
  #frames = 0;
  #flushQueued = false;

  constructor(private readonly socket: net.Socket) {}

  /** Bytes encoded and not yet handed to the socket. */
  get pendingBytes(): number {
    return this.#used - this.#start;
  }

  /**
   * Queues a frame; returns its size on the wire. `release` is called once the
   * payload is no longer needed: at once when it was copied into the batch,
   * else by the socket's write of it (with an error if it never left).
   */
  write(kind: FrameKind, requestId: number, name: string, meta: Uint8Array, payload?: Uint8Array, release?: (e?: Error | null) => void): number {
    const payloadBytes = payload?.byteLength ?? 0;
    const headBytes = frameHeadBytes(name.length, meta.byteLength);
    const inline = payloadBytes <= inlinePayloadBytesMax;
    const batchBytes = headBytes + (inline ? payloadBytes : 0);
    if (this.#used + batchBytes > this.#slab.byteLength) {
      this.flush();
      this.#slab = Buffer.allocUnsafe(Math.max(slabBytes, batchBytes));
      this.#start = this.#used = 0;
    }
    this.#used = encodeFrameHead(this.#slab, this.#used, kind, requestId, name, meta, payloadBytes);
    if (inline) {
      if (payload !== undefined && payloadBytes > 0) {
        this.#slab.set(payload, this.#used);
        this.#used += payloadBytes;
      }
      release?.();
      if (++this.#frames >= framesPerBatchMax) this.flush();
      else this.#queueFlush();
    } else {
      // Head and payload leave together, in one writev.
      this.socket.cork();
      this.flush();
      this.socket.write(payload!, release);
      this.socket.uncork();
    }
    return headBytes + payloadBytes;
  }

  /** Hands the batch to the socket now (before the socket is ended, say). */
  flush(): void {
    if (this.#used === this.#start) return;
    const batch = this.#slab.subarray(this.#start, this.#used);
    this.#start = this.#used;
    this.#frames = 0;
    this.socket.write(batch);
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    process.nextTick(() => {
      this.#flushQueued = false;
      if (!this.socket.destroyed) this.flush();
    });
  }
}
