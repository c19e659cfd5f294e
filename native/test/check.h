// A minimal check macro for the native tests: reports and counts failures, keeps going.
#pragma once

#include <cstdio>

inline int failures = 0;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                     \
      std::fprintf(stderr, "\n");                                            \
      failures++;                                                            \
    }                                                                        \
  } while (0)
