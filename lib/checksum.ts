/**
 * Checksums of object bytes, end to end: the writer computes them, the
 * storage node checks them on write, the reader checks them on read.
 *
 * The checksum is CRC-32/ISO-HDLC (polynomial 0x04C11DB7 reflected, init and
 * final xor 0xFFFFFFFF) exactly as zlib computes it, so Python's
 * `zlib.crc32(data)` gives the same value. On the wire it is an unsigned
 * 32-bit integer (0 ..= 0xFFFFFFFF); the crc of no bytes is 0.
 *
 * @example
 *   crc32(Buffer.from("123456789")) === 0xcbf43926;
 *   crc32Combine(crc32(a), crc32(b), b.byteLength) === crc32(Buffer.concat([a, b]));
 */
import { crc32 as zlibCrc32 } from "node:zlib";

/** Largest value a CRC-32 takes. */
export const crc32Max = 0xffff_ffff;

/** A CRC-32 function with zlib's values: `previous` continues an earlier crc. */
export type Crc32Function = (bytes: Uint8Array, previous: number) => number;

/** Inputs at least this long go to the accelerated function, when one is installed (measured: it is ahead from 256 bytes up). */
const AcceleratedFromBytes = 256;

let accelerated: Crc32Function | undefined;

/**
 * Makes `crc32` use `fn` for inputs of 256 bytes or more (`undefined`: zlib
 * again). `fn` must give zlib's values: it changes the speed, never a crc.
 * The server processes install the native addon's (carry-less
 * multiplication, about 2.3× zlib's speed on 1 MiB); the SDK keeps zlib.
 */
export function accelerateCrc32(fn: Crc32Function | undefined): void {
  accelerated = fn;
}

/** CRC-32 of `bytes` (native code, no copy); `previous` continues an earlier crc over bytes that came before. */
export function crc32(bytes: Uint8Array, previous = 0): number {
  if (accelerated !== undefined && bytes.byteLength >= AcceleratedFromBytes) return accelerated(bytes, previous) >>> 0;
  return zlibCrc32(bytes, previous) >>> 0;
}

/** True for a value a CRC-32 can take. */
export function isCrc32(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= crc32Max;
}

/**
 * The CRC-32 of A‖B from the CRC-32 of A, that of B and B's length in bytes,
 * without the bytes (zlib's `crc32_combine`, by its GF(2) matrix method).
 * Costs at most 32 matrix-vector products of 32 words each, whatever the length.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (!isCrc32(crcA) || !isCrc32(crcB)) throw new RangeError(`crc32Combine: crcs must be unsigned 32-bit integers, got ${crcA} and ${crcB}`);
  if (!Number.isSafeInteger(lengthB) || lengthB < 0) throw new RangeError(`crc32Combine: bad length ${lengthB}`);
  let crc = crcA;
  let n = lengthB;
  for (let bit = 0; n > 0; bit++) {
    // The length's high bits are read by division: it may be past 2^32.
    if (n % 2 === 1) crc = gf2Times(zerosOperator(bit), crc);
    n = Math.floor(n / 2);
  }
  return (crc ^ crcB) >>> 0;
}

/**
 * `operators[k]` appends 2^k zero bytes to a crc: a 32×32 matrix over GF(2),
 * one column per word. Built once, by squaring, as zlib does on every call.
 */
const operators: Uint32Array[] = [];

function zerosOperator(k: number): Uint32Array {
  while (operators.length <= k) {
    const last = operators[operators.length - 1];
    operators.push(last ? gf2Square(last) : oneZeroByte());
  }
  return operators[k]!;
}

/** The operator for one zero byte: the one for a zero bit (the reflected polynomial's shift), squared three times. */
function oneZeroByte(): Uint32Array {
  let op: Uint32Array = new Uint32Array(32);
  op[0] = 0xedb8_8320; // reflected 0x04C11DB7
  for (let n = 1; n < 32; n++) op[n] = (1 << (n - 1)) >>> 0;
  for (let i = 0; i < 3; i++) op = gf2Square(op);
  return op;
}

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  let v = vec >>> 0;
  for (let i = 0; v !== 0; i++, v >>>= 1) {
    if (v & 1) sum ^= mat[i]!;
  }
  return sum >>> 0;
}

function gf2Square(mat: Uint32Array): Uint32Array {
  const square = new Uint32Array(32);
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]!);
  return square;
}
