// CRC-32/ISO-HDLC (zlib's crc32: polynomial 0x04C11DB7 reflected, init and final xor 0xFFFFFFFF)
// by carry-less multiplication where the CPU has it (x86-64 PCLMULQDQ): about 14 GB/s on one core
// of this project's machines against 6 GB/s for the zlib Node carries. Same values as zlib's, for
// every length, alignment and starting crc (native/test/crc32_test.cc checks them against zlib).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pocket {

// The crc of `bytes` continuing `previous` (0 to start), as zlib's crc32(previous, bytes, length).
uint32_t Crc32(uint32_t previous, const uint8_t* bytes, size_t length);

// True when Crc32 folds with carry-less multiplication (else it runs a table, slower than zlib).
bool Crc32Accelerated();

}  // namespace pocket
