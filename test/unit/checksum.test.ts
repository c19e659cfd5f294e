import { crc32, crc32Combine, crc32Max, isCrc32 } from "../../lib/checksum";

/** xorshift32: one seed reproduces every split. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

function randomBytesFrom(next: () => number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = next() & 0xff;
  return out;
}

test("crc32 is CRC-32/ISO-HDLC as zlib (and Python's zlib.crc32) computes it, unsigned", () => {
  // Values from Python: hex(zlib.crc32(b"...")).
  expect(crc32(new Uint8Array(0))).toBe(0);
  expect(crc32(Buffer.from("a"))).toBe(0xe8b7be43);
  expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
  expect(crc32(Buffer.from("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
  // Continuing a crc over the next bytes is the crc of the whole.
  const fox = Buffer.from("The quick brown fox jumps over the lazy dog");
  expect(crc32(fox.subarray(10), crc32(fox.subarray(0, 10)))).toBe(0x414fa339);
  // A view into a larger buffer covers only its own bytes.
  const big = Buffer.from("xx123456789yy");
  expect(crc32(new Uint8Array(big.buffer, big.byteOffset + 2, 9))).toBe(0xcbf43926);
  expect(isCrc32(0xcbf43926)).toBe(true);
  expect(isCrc32(-1)).toBe(false);
  expect(isCrc32(crc32Max + 1)).toBe(false);
});

test.each([1, 2, 3, 0xdecafbad])("crc32Combine equals the crc of the concatenation over random splits (seed %i)", (seed) => {
  const next = prng(seed);
  for (let round = 0; round < 200; round++) {
    // Sizes from 0 (an empty part) to a few extents' worth of pages.
    const size = round < 10 ? round : next() % 20_000;
    const bytes = randomBytesFrom(next, size);
    const cut = size === 0 ? 0 : next() % (size + 1);
    const a = bytes.subarray(0, cut);
    const b = bytes.subarray(cut);
    const got = crc32Combine(crc32(a), crc32(b), b.byteLength);
    if (got !== crc32(bytes)) throw new Error(`seed ${seed} round ${round}: size ${size} cut at ${cut}: ${got} != ${crc32(bytes)}`);
  }
});

test("three parts, as a reader checks a range: prefix ‖ range ‖ suffix, any of them empty", () => {
  const next = prng(42);
  const bytes = randomBytesFrom(next, 4096);
  for (const [from, to] of [[0, 0], [0, 4096], [0, 100], [100, 4096], [4096, 4096], [1000, 1001], [1, 4095]] as const) {
    const prefix = crc32(bytes.subarray(0, from));
    const range = crc32(bytes.subarray(from, to));
    const suffix = crc32(bytes.subarray(to));
    const whole = crc32Combine(crc32Combine(prefix, range, to - from), suffix, 4096 - to);
    expect(whole).toBe(crc32(bytes));
  }
});

test("empty parts: A‖ε = A and ε‖B = B", () => {
  const b = Buffer.from("123456789");
  expect(crc32Combine(0xcbf43926, 0, 0)).toBe(0xcbf43926);
  expect(crc32Combine(0, crc32(b), b.byteLength)).toBe(0xcbf43926);
  expect(crc32Combine(0, 0, 0)).toBe(0);
});

test("lengths past 2^32 combine consistently (associativity), and bad inputs are refused", () => {
  const next = prng(7);
  for (const [l1, l2] of [[2 ** 32 + 5, 3], [2 ** 40, 2 ** 33 + 1], [2 ** 31, 2 ** 31], [Number.MAX_SAFE_INTEGER - 10, 10]] as const) {
    const [a, b, c] = [next(), next(), next()];
    const left = crc32Combine(crc32Combine(a, b, l1), c, l2);
    const right = crc32Combine(a, crc32Combine(b, c, l2), l1 + l2);
    expect(left).toBe(right);
    expect(isCrc32(left)).toBe(true);
  }
  // CRC-32's polynomial is primitive: appending 2^32 - 1 zero bytes is the identity, which
  // checks the length's high bits independently of the combine itself.
  const period = 2 ** 32 - 1;
  for (const [k, r] of [[1, 0], [2, 0], [5, 3], [2000, 1_000_003]] as const) {
    const [a, b] = [next(), next()];
    expect(crc32Combine(a, b, k * period + r)).toBe(crc32Combine(a, b, r));
  }
  const zeros = Buffer.alloc(1 << 24);
  expect(crc32Combine(crc32(Buffer.from("abc")), crc32(zeros), zeros.byteLength)).toBe(crc32(Buffer.concat([Buffer.from("abc"), zeros])));
  expect(() => crc32Combine(-1, 0, 1)).toThrow(RangeError);
  expect(() => crc32Combine(0, 2 ** 32, 1)).toThrow(RangeError);
  expect(() => crc32Combine(0, 0, -1)).toThrow(RangeError);
  expect(() => crc32Combine(0, 0, 1.5)).toThrow(RangeError);
});
