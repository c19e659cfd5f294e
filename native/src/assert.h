// Invariant checks for the native engine. A failed one is a bug in this code,
// never bad input (arguments are validated in TypeScript and at Engine::Open),
// and the engine must not go on with corrupted state: it prints file:line, the
// condition and a message to stderr, then aborts. On in every build, so only
// cheap comparisons belong here (they run on the I/O path).
// -DPOCKET_ASSERT_OFF compiles them out: for measuring their cost, never for shipping
// (bash scripts/native-test.sh --assert-cost).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pocket {

// Any thread: reports a failed POCKET_ASSERT and aborts.
[[noreturn]] __attribute__((cold, noinline)) inline void AssertFailed(const char* file, int line, const char* condition, const char* message) {
  std::fprintf(stderr, "%s:%d: pocket assertion failed: %s: %s\n", file, line, condition, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace pocket

#ifdef POCKET_ASSERT_OFF
// Compiled out: the condition is still type-checked (sizeof does not evaluate it).
#define POCKET_ASSERT(cond, msg) \
  do {                           \
    (void)sizeof(!(cond));       \
  } while (0)
#else
#define POCKET_ASSERT(cond, msg)                                                      \
  do {                                                                                \
    if (__builtin_expect(!(cond), 0)) ::pocket::AssertFailed(__FILE__, __LINE__, #cond, msg); \
  } while (0)
#endif
