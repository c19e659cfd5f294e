#include "crc32.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace pocket {

namespace {

struct Table {
  uint32_t entries[256];
  Table() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      entries[i] = c;
    }
  }
};

// A byte at a time: the tail past the last 16-byte block, and CPUs without carry-less multiplication.
uint32_t Bytewise(uint32_t crc, const uint8_t* p, size_t n) {
  static const Table table;
  crc = ~crc;
  while (n--) crc = table.entries[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
// Folds `length` bytes (at least 64, a multiple of 16) into `crc` (pre- and post-inverted by the
// caller), four 128-bit lanes 64 bytes at a time, then one lane, then a Barrett reduction to 32 bits.
// The constants are x^k mod P for the reflected polynomial (Gopal et al., "Fast CRC computation for
// generic polynomials using PCLMULQDQ", Intel, 2009): k1,k2 fold across 512 bits, k3,k4 across 128,
// k5 from 64 to 32 bits; P' and mu for the reduction.
#define POCKET_CLMUL __attribute__((target("pclmul,sse4.1")))

POCKET_CLMUL inline __m128i load(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// a·k (each 64-bit half by its constant) folded onto b.
POCKET_CLMUL inline __m128i fold(__m128i a, __m128i k, __m128i b) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x00), _mm_clmulepi64_si128(a, k, 0x11)), b);
}

POCKET_CLMUL uint32_t Fold(const uint8_t* buf, size_t length, uint32_t crc) {
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
  const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124);
  const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
  __m128i x1 = _mm_xor_si128(load(buf), _mm_cvtsi32_si128(int(crc)));
  __m128i x2 = load(buf + 16);
  __m128i x3 = load(buf + 32);
  __m128i x4 = load(buf + 48);
  buf += 64;
  length -= 64;
  while (length >= 64) {
    x1 = fold(x1, k1k2, load(buf));
    x2 = fold(x2, k1k2, load(buf + 16));
    x3 = fold(x3, k1k2, load(buf + 32));
    x4 = fold(x4, k1k2, load(buf + 48));
    buf += 64;
    length -= 64;
  }
  x1 = fold(x1, k3k4, x2);
  x1 = fold(x1, k3k4, x3);
  x1 = fold(x1, k3k4, x4);
  while (length >= 16) {
    x1 = fold(x1, k3k4, load(buf));
    buf += 16;
    length -= 16;
  }
  // 128 bits to 64.
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(x1, k3k4, 0x10));
  // 64 to 32.
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5, 0x00), _mm_srli_si128(x1, 4));
  // Barrett reduction.
  __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
  return uint32_t(_mm_extract_epi32(_mm_xor_si128(x1, t), 1));
}

bool HasPclmul() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return has;
}
#endif

}  // namespace

bool Crc32Accelerated() {
#if defined(__x86_64__)
  return HasPclmul();
#else
  return false;
#endif
}

uint32_t Crc32(uint32_t previous, const uint8_t* bytes, size_t length) {
#if defined(__x86_64__)
  if (length >= 64 && HasPclmul()) {
    const size_t blocks = length & ~size_t(15);
    previous = ~Fold(bytes, blocks, ~previous);
    bytes += blocks;
    length -= blocks;
  }
#endif
  return Bytewise(previous, bytes, length);
}

}  // namespace pocket
