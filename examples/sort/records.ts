/**
 * Records of the sort job, TeraSort-style: 100 bytes each, a 10-byte random
 * key then a 90-byte value. Pure functions: generation, partitioning, sorting
 * and an order-independent checksum (to check that the output holds exactly
 * the input's records).
 */
export const recordBytes = 100;
export const keyBytes = 10;

export interface Checksum {
  records: number;
  /** Sum of record hashes mod 2^32. */
  sum: number;
  /** XOR of record hashes. */
  xor: number;
}

export function emptyChecksum(): Checksum {
  return { records: 0, sum: 0, xor: 0 };
}

export function mergeChecksum(a: Checksum, b: Checksum): Checksum {
  return { records: a.records + b.records, sum: (a.sum + b.sum) >>> 0, xor: (a.xor ^ b.xor) >>> 0 };
}

/** Generates `count` records from `seed` (the same seed gives the same bytes). */
export function generateRecords(count: number, seed: number, firstIndex: number): Buffer {
  const out = Buffer.allocUnsafe(count * recordBytes);
  let x = (seed * 2654435761) >>> 0 || 0x9e3779b9;
  for (let r = 0; r < count; r++) {
    const base = r * recordBytes;
    // Key: 10 random bytes.
    for (let i = 0; i < 8; i += 4) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      out.writeUInt32BE(x, base + i);
    }
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.writeUInt16BE(x & 0xffff, base + 8);
    // Value: the record's global index, then a filler derived from it.
    out.writeDoubleBE(firstIndex + r, base + keyBytes);
    out.fill(0x41 + ((firstIndex + r) % 26), base + keyBytes + 8, base + recordBytes);
  }
  return out;
}

/** Which of `partitions` a key goes to: contiguous key ranges, so sorted partitions concatenate to a sorted whole. */
export function partitionOf(records: Buffer, index: number, partitions: number): number {
  const k = records.readUInt16BE(index * recordBytes);
  return Math.floor((k * partitions) / 65536);
}

/** Splits records into `partitions` buffers by key range. */
export function partition(records: Buffer, partitions: number): Buffer[] {
  const n = records.byteLength / recordBytes;
  const counts = new Array<number>(partitions).fill(0);
  const of = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const p = partitionOf(records, i, partitions);
    of[i] = p;
    counts[p]!++;
  }
  const parts = counts.map((c) => Buffer.allocUnsafe(c * recordBytes));
  const at = new Array<number>(partitions).fill(0);
  for (let i = 0; i < n; i++) {
    const p = of[i]!;
    records.copy(parts[p]!, at[p]!, i * recordBytes, (i + 1) * recordBytes);
    at[p]! += recordBytes;
  }
  return parts;
}

/** Hash of one record (32-bit words mixed, murmur-style finaliser). */
function recordHash(buf: Buffer, base: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < recordBytes; i += 4) {
    h = Math.imul(h ^ buf.readUInt32LE(base + i), 0x01000193);
    h ^= h >>> 15;
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function checksum(records: Buffer): Checksum {
  if (records.byteLength % recordBytes !== 0) throw new Error(`${records.byteLength} bytes is not a whole number of records`);
  const c = emptyChecksum();
  for (let base = 0; base < records.byteLength; base += recordBytes) {
    const h = recordHash(records, base);
    c.sum = (c.sum + h) >>> 0;
    c.xor = (c.xor ^ h) >>> 0;
    c.records++;
  }
  return c;
}

/** Sorts records by key; returns a new buffer. */
export function sortRecords(records: Buffer): Buffer {
  const n = records.byteLength / recordBytes;
  const hi = new Float64Array(n);
  for (let i = 0; i < n; i++) hi[i] = records.readUIntBE(i * recordBytes, 6);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => {
    const d = hi[a]! - hi[b]!;
    if (d !== 0) return d;
    return records.compare(records, b * recordBytes + 6, b * recordBytes + keyBytes, a * recordBytes + 6, a * recordBytes + keyBytes);
  });
  const out = Buffer.allocUnsafe(records.byteLength);
  for (let i = 0; i < n; i++) records.copy(out, i * recordBytes, order[i]! * recordBytes, (order[i]! + 1) * recordBytes);
  return out;
}

/** Index of the first record out of order, or -1 if sorted. */
export function firstUnsorted(records: Buffer): number {
  const n = records.byteLength / recordBytes;
  for (let i = 1; i < n; i++) {
    if (records.compare(records, (i - 1) * recordBytes, (i - 1) * recordBytes + keyBytes, i * recordBytes, i * recordBytes + keyBytes) < 0) return i;
  }
  return -1;
}

export function keyHex(records: Buffer, index: number): string {
  return records.toString("hex", index * recordBytes, index * recordBytes + keyBytes);
}
