// CRC-32 (native/src/crc32.cc) against a bit-at-a-time reference: the published check value, every
// length up to 600 at every alignment within 16 bytes, longer random runs, and continuation (a crc
// over A then B equals the crc over A‖B), which is how callers feed it pieces.
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "../src/crc32.h"
#include "check.h"

namespace {

// CRC-32/ISO-HDLC from its definition: one bit at a time, no tables.
uint32_t Reference(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

}  // namespace

int main() {
  std::printf("crc32: carry-less multiplication %s\n", pocket::Crc32Accelerated() ? "on" : "off (a table)");
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(pocket::Crc32(0, check, sizeof check) == 0xcbf43926u, "crc of \"123456789\" is %08x", pocket::Crc32(0, check, sizeof check));
  CHECK(pocket::Crc32(0, nullptr, 0) == 0, "crc of nothing is not 0");
  CHECK(pocket::Crc32(0x12345678u, nullptr, 0) == 0x12345678u, "no bytes change the crc");

  std::mt19937_64 rng(42);
  std::vector<uint8_t> bytes(1 << 20);
  for (auto& b : bytes) b = uint8_t(rng());
  for (size_t offset = 0; offset < 16; offset++) {
    for (size_t length = 0; length <= 600; length++) {
      const uint32_t previous = length % 3 == 0 ? 0 : uint32_t(rng());
      const uint32_t got = pocket::Crc32(previous, bytes.data() + offset, length);
      const uint32_t want = Reference(previous, bytes.data() + offset, length);
      CHECK(got == want, "offset %zu length %zu: %08x, want %08x", offset, length, got, want);
    }
  }
  for (int i = 0; i < 200; i++) {
    const size_t offset = rng() % 64;
    const size_t length = rng() % (bytes.size() - offset);
    const uint32_t got = pocket::Crc32(0, bytes.data() + offset, length);
    CHECK(got == Reference(0, bytes.data() + offset, length), "offset %zu length %zu", offset, length);
    const size_t cut = length ? rng() % length : 0;
    const uint32_t pieces = pocket::Crc32(pocket::Crc32(0, bytes.data() + offset, cut), bytes.data() + offset + cut, length - cut);
    CHECK(pieces == got, "offset %zu length %zu cut at %zu: %08x, whole %08x", offset, length, cut, pieces, got);
  }
  if (failures) {
    std::printf("crc32: %d FAILED\n", failures);
    return 1;
  }
  std::printf("crc32: all checks passed\n");
  return 0;
}
