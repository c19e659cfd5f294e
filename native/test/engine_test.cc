// The engine on a real file with O_DIRECT and io_uring, without Node: data
// integrity from several tenants, refusals, shutdown with requests queued.
//   bash scripts/native-test.sh [--asan]
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "../src/engine.h"

using namespace pocket;

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Completion> done;
  bool closed = false;
  void Add(std::vector<Completion>&& batch) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& c : batch) done[c.id] = c;
    cv.notify_all();
  }
  Completion Wait(uint64_t id) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done.count(id) != 0; });
    return done[id];
  }
};

static DeviceModel Model() {
  DeviceModel m;
  m.tokensPerSec = 1e9;  // the device model does not limit these tests
  return m;
}

static std::string TempFile() {
  const char* dir = std::getenv("POCKET_TEST_DIR");
  std::string path = std::string(dir ? dir : "/var/tmp") + "/pocket-engine-test-XXXXXX";
  std::vector<char> buf(path.begin(), path.end());
  buf.push_back('\0');
  const int fd = mkstemp(buf.data());
  if (fd >= 0) close(fd);
  return std::string(buf.data());
}

// Options for an engine on a new temporary file of `bytes`.
static EngineOptions TempOptions(uint64_t bytes, unsigned queueDepth) {
  EngineOptions o;
  o.path = TempFile();
  o.sizeBytes = bytes;
  o.queueDepth = queueDepth;
  o.model = Model();
  return o;
}

// Opens an engine whose completions go to `col` (a failed check when it cannot be opened).
static std::unique_ptr<Engine> OpenCollecting(const EngineOptions& o, Collector& col) {
  EngineError err;
  auto e = Engine::Open(o, [&col](std::vector<Completion>&& b) { col.Add(std::move(b)); }, &err);
  CHECK(e != nullptr, "open: %s", err.message.c_str());
  return e;
}

static void Integrity() {
  std::printf("integrity: random blocks from three tenants, read back\n");
  Collector col;
  EngineOptions o = TempOptions(16 << 20, 32);
  const std::string path = o.path;
  auto e = OpenCollecting(o, col);
  if (!e) return;
  CHECK(e->capacityBytes() == uint64_t(16 << 20), "capacity %llu", (unsigned long long)e->capacityBytes());
  e->AddBestEffort(1);
  e->AddBestEffort(2);
  std::string why;
  CHECK(e->AddLatencyCritical(3, Slo{1000, 0.5, 1000}, &why), "%s", why.c_str());
  std::mt19937_64 rng(42);
  const int blocks = 512;  // 4 KiB .. 64 KiB extents in a 16 MiB file, non-overlapping slots of 64 KiB
  std::vector<std::vector<uint8_t>> expect(blocks);
  uint64_t id = 1;
  for (int i = 0; i < blocks / 2; i++) {
    const uint32_t len = kBlock * uint32_t(1 + rng() % 16);
    void* buf = AllocateAligned(len);
    auto* p = static_cast<uint8_t*>(buf);
    for (uint32_t k = 0; k < len; k++) p[k] = uint8_t(rng());
    expect[i].assign(p, p + len);
    CHECK(e->Submit(id++, uint32_t(1 + i % 3), Op::Write, uint64_t(i) * 65536, len, buf) == 0, "submit write %d", i);
  }
  for (uint64_t w = 1; w < id; w++) {
    auto c = col.Wait(w);
    CHECK(c.result == int32_t(expect[w - 1].size()), "write %llu result %d", (unsigned long long)w, c.result);
  }
  const uint64_t firstRead = id;
  for (int i = 0; i < blocks / 2; i++) {
    const uint32_t len = uint32_t(expect[i].size());
    CHECK(e->Submit(id++, uint32_t(1 + (i + 1) % 3), Op::Read, uint64_t(i) * 65536, len, AllocateAligned(len)) == 0, "submit read %d", i);
  }
  for (uint64_t r = firstRead; r < id; r++) {
    auto c = col.Wait(r);
    const auto& want = expect[r - firstRead];
    CHECK(c.result == int32_t(want.size()), "read result %d", c.result);
    CHECK(c.buffer && std::memcmp(c.buffer, want.data(), want.size()) == 0, "read %llu differs", (unsigned long long)r);
    std::free(c.buffer);
  }
  // Refusals: an unknown tenant.
  void* b = AllocateAligned(kBlock);
  CHECK(e->Submit(id++, 99, Op::Read, 0, kBlock, b) == -ENOENT, "unknown tenant");
  std::free(b);
  std::atomic<bool> closed{false};
  e->Close([&] { closed = true; });
  e->Join();
  CHECK(closed.load(), "onClosed did not run");
  void* late = AllocateAligned(kBlock);
  CHECK(e->Submit(id++, 1, Op::Read, 0, kBlock, late) == -ESHUTDOWN, "submit after close");
  std::free(late);
  e.reset();
  unlink(path.c_str());
}

static void ShutdownWithQueue() {
  std::printf("shutdown with requests queued and in flight\n");
  const std::string path = TempFile();
  Collector col;
  EngineOptions o;
  o.path = path;
  o.sizeBytes = 8 << 20;
  o.queueDepth = 4;
  DeviceModel slow = Model();
  slow.tokensPerSec = 1e5;  // 1000 reads/s: most requests wait in the scheduler
  o.model = slow;
  auto e = OpenCollecting(o, col);
  if (!e) return;
  std::string why;
  CHECK(e->AddLatencyCritical(2, Slo{10, 1.0, 1000}, &why), "%s", why.c_str());  // a reservation: best-effort is metered
  e->AddBestEffort(1);
  const int n = 200;
  for (int i = 0; i < n; i++) CHECK(e->Submit(uint64_t(i + 1), 1, Op::Read, uint64_t(i % 64) * kBlock, kBlock, AllocateAligned(kBlock)) == 0, "submit %d", i);
  usleep(5000);
  e->Close(nullptr);
  e->Join();
  int ok = 0, cancelled = 0;
  for (int i = 1; i <= n; i++) {
    auto c = col.Wait(uint64_t(i));
    if (c.result == int32_t(kBlock)) ok++;
    else if (c.result == -ECANCELED) cancelled++;
    std::free(c.buffer);
  }
  CHECK(ok + cancelled == n, "every request answered: %d ok, %d cancelled of %d", ok, cancelled, n);
  CHECK(cancelled > 0, "some should have been cancelled (ok %d)", ok);
  e.reset();
  unlink(path.c_str());
}

// Inline: pumps only when the eventfd is readable, as an event loop would, until `id` is answered
// (true) or 5 s pass (false: something the engine waits for never signalled the eventfd).
static bool PumpUntil(Engine& e, Collector& col, uint64_t id) {
  for (int waited = 0; waited < 5000; waited += 10) {
    {
      std::lock_guard<std::mutex> lock(col.mu);
      if (col.done.count(id)) return true;
    }
    pollfd p{e.eventFd(), POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    uint64_t count = 0;
    if (read(e.eventFd(), &count, sizeof count) < 0) { /* EAGAIN: already reset */ }
    e.Pump(true);
  }
  return false;
}

static void InlineMode() {
  std::printf("inline: no engine thread; the caller pumps on the eventfd\n");
  Collector col;
  EngineOptions o = TempOptions(8 << 20, 8);
  o.inlineMode = true;
  DeviceModel metered = Model();
  metered.tokensPerSec = 2e5;  // 2000 reads/s once a reservation meters best-effort: the ring's timer must pump
  o.model = metered;
  const std::string path = o.path;
  auto e = OpenCollecting(o, col);
  if (!e) return;
  CHECK(e->inlineMode() && e->eventFd() >= 0, "inline mode without an eventfd");
  e->AddBestEffort(1);
  std::mt19937_64 rng(7);
  const int n = 64;
  std::vector<std::vector<uint8_t>> expect(n);
  uint64_t id = 1;
  for (int i = 0; i < n; i++) {
    void* buf = AllocateAligned(kBlock);
    auto* p = static_cast<uint8_t*>(buf);
    for (uint32_t k = 0; k < kBlock; k++) p[k] = uint8_t(rng());
    expect[i].assign(p, p + kBlock);
    CHECK(e->Submit(id++, 1, Op::Write, uint64_t(i) * kBlock, kBlock, buf) == 0, "submit write %d", i);
    e->Pump(false);  // submits without reaping, as after a call from JS
  }
  CHECK(PumpUntil(*e, col, id - 1), "the writes were not all answered");
  const uint64_t firstRead = id;
  for (int i = 0; i < n; i++) CHECK(e->Submit(id++, 1, Op::Read, uint64_t(i) * kBlock, kBlock, AllocateAligned(kBlock)) == 0, "submit read %d", i);
  e->Pump(false);
  CHECK(PumpUntil(*e, col, id - 1), "the reads were not all answered");
  for (uint64_t r = firstRead; r < id; r++) {
    auto c = col.Wait(r);
    CHECK(c.result == int32_t(kBlock) && c.buffer && std::memcmp(c.buffer, expect[r - firstRead].data(), kBlock) == 0, "read %llu differs", (unsigned long long)r);
    std::free(c.buffer);
  }
  // Metered: requests wait for tokens with nothing in flight; only the ring's timer wakes the eventfd.
  std::string why;
  CHECK(e->AddLatencyCritical(2, Slo{10, 1.0, 1000}, &why), "%s", why.c_str());
  const uint64_t firstMetered = id;
  for (int i = 0; i < 40; i++) CHECK(e->Submit(id++, 1, Op::Read, uint64_t(i) * kBlock, kBlock, AllocateAligned(kBlock)) == 0, "submit metered %d", i);
  e->Pump(false);
  CHECK(PumpUntil(*e, col, firstMetered + 9), "metered requests were not served (the timer did not pump)");
  // Close with the rest queued or in flight: Join answers every one and runs onClosed.
  bool closed = false;
  e->Close([&] { closed = true; });
  e->Join();
  CHECK(closed, "onClosed did not run");
  int ok = 0, cancelled = 0;
  for (uint64_t r = firstMetered; r < id; r++) {
    auto c = col.Wait(r);
    if (c.result == int32_t(kBlock)) ok++;
    else if (c.result == -ECANCELED) cancelled++;
    std::free(c.buffer);
  }
  CHECK(ok + cancelled == 40, "every metered request answered once: %d ok, %d cancelled", ok, cancelled);
  e.reset();
  unlink(path.c_str());
}

static void BadOpen() {
  std::printf("open errors\n");
  EngineError err;
  EngineOptions o;
  o.path = "/nonexistent/dir/file";
  o.model = Model();
  auto e = Engine::Open(o, [](std::vector<Completion>&&) {}, &err);
  CHECK(!e && err.errnum == ENOENT && err.op == "open", "errnum %d op %s", err.errnum, err.op.c_str());
  o.path = TempFile();
  o.sizeBytes = 0;  // empty file, no size
  e = Engine::Open(o, [](std::vector<Completion>&&) {}, &err);
  CHECK(!e && err.errnum == EINVAL, "empty file: errnum %d", err.errnum);
  unlink(o.path.c_str());
}

static void PoolBatches() {
  std::printf("pool: batched submissions in registered buffers, a refusal among them, slots all returned\n");
  Collector col;
  EngineOptions o = TempOptions(8 << 20, 8);
  const std::string path = o.path;
  o.poolBuffers = 6;
  o.poolBufferBytes = 16384;
  auto e = OpenCollecting(o, col);
  if (!e) return;
  e->AddBestEffort(1);
  BufferPool& pool = *e->pool();
  std::mt19937_64 rng(7);
  uint64_t id = 1;
  std::vector<std::vector<uint8_t>> expect;
  for (int round = 0; round < 20; round++) {
    // Six writes in one batch (every slot), the fourth for an unknown tenant.
    std::vector<Request> batch;
    for (int k = 0; k < 6; k++) {
      Request r;
      r.id = id++;
      r.tenant = k == 3 ? 99 : 1;
      r.write = true;
      r.offset = uint64_t(round * 6 + k) * 16384;
      r.length = kBlock * uint32_t(1 + rng() % 4);
      r.pool = pool.Acquire();
      CHECK(r.pool >= 0, "round %d: slot %d not free", round, k);
      if (r.pool < 0) return;
      r.buffer = pool.At(r.pool);
      auto* p = static_cast<uint8_t*>(r.buffer);
      for (uint32_t b = 0; b < r.length; b++) p[b] = uint8_t(rng());
      if (k != 3) expect.emplace_back(p, p + r.length);
      batch.push_back(r);
    }
    int32_t rcs[6];
    e->SubmitBatch(batch.data(), batch.size(), rcs);
    CHECK(rcs[3] == -ENOENT, "unknown tenant in a batch: %d", rcs[3]);
    pool.Release(batch[3].pool);  // refused: still the caller's
    for (int k = 0; k < 6; k++) {
      if (k == 3) continue;
      CHECK(rcs[k] == 0, "batch entry %d refused: %d", k, rcs[k]);
      auto c = col.Wait(batch[k].id);
      CHECK(c.result == int32_t(batch[k].length), "write result %d", c.result);
    }
    // Read each back into a slot; the receiver compares and releases it.
    size_t next = expect.size() - 5;
    for (int k = 0; k < 6; k++) {
      if (k == 3) continue;
      Request r = batch[k];
      r.id = id++;
      r.write = false;
      r.pool = pool.Acquire();
      CHECK(r.pool >= 0, "read slot");
      if (r.pool < 0) return;
      r.buffer = pool.At(r.pool);
      std::memset(r.buffer, 0, r.length);
      int32_t rc = 1;
      e->SubmitBatch(&r, 1, &rc);
      CHECK(rc == 0, "read refused %d", rc);
      auto c = col.Wait(r.id);
      const auto& want = expect[next++];
      CHECK(c.pool == r.pool && c.result == int32_t(want.size()) && std::memcmp(c.buffer, want.data(), want.size()) == 0, "read back differs");
      pool.Release(c.pool);
    }
  }
  // Every slot is back: six can be taken again, not a seventh.
  int32_t taken[7];
  for (int k = 0; k < 7; k++) taken[k] = pool.Acquire();
  CHECK(taken[5] >= 0 && taken[6] == -1, "pool slots leaked or doubled");
  for (int k = 0; k < 6; k++) pool.Release(taken[k]);
  e->Close(nullptr);
  e->Join();
  e.reset();
  unlink(path.c_str());
}

static void LargeCache() {
  std::printf("large blocks: reused by size class, cache bounded\n");
  auto pool = BufferPool::Create(2, kBlock, 1 << 20);  // keeps 1 MiB of large blocks at most
  CHECK(pool != nullptr, "pool");
  if (!pool) return;
  void* a = pool->TakeLarge(300 * 1024);  // class 512 KiB
  void* b = pool->TakeLarge(512 * 1024);
  void* c = pool->TakeLarge(400 * 1024);
  CHECK(a && b && c && (reinterpret_cast<uintptr_t>(a) % kBlock) == 0, "aligned blocks");
  std::memset(a, 1, 512 * 1024);  // the whole class is usable
  pool->GiveLarge(a, 300 * 1024);
  pool->GiveLarge(b, 512 * 1024);
  pool->Return(c, kCachedMemory, 400 * 1024);  // past the bound: freed, not kept
  CHECK(pool->cachedBytes() == 1 << 20, "cached %zu", pool->cachedBytes());
  void* again = pool->TakeLarge(260 * 1024);
  CHECK(again == a || again == b, "a cached block of the class is reused");
  CHECK(pool->cachedBytes() == 512 * 1024, "cached %zu after reuse", pool->cachedBytes());
  CHECK(pool->TakeLarge(size_t(32) << 20) == nullptr, "beyond 16 MiB: refused");
  pool->Return(again, kCachedMemory, 260 * 1024);
  void* own = AllocateAligned(kBlock);
  pool->Return(own, kOwnMemory, kBlock);
  const int32_t slot = pool->Acquire();
  pool->Return(pool->At(slot), slot, kBlock);
  CHECK(pool->Acquire() >= 0 && pool->Acquire() >= 0 && pool->Acquire() == -1, "slots back after Return");
}

static void AssertionsAbort() {
  std::printf("a broken invariant aborts: a pool slot released twice, a slot outside the pool, a bad model\n");
  auto pool = BufferPool::Create(2, kBlock);
  CHECK(pool != nullptr, "pool");
  if (!pool) return;
  CHECK(Aborts([&] {
    const int32_t slot = pool->Acquire();
    pool->Release(slot);
    pool->Release(slot);
  }, "pocket assertion failed: taken_[size_t(slot)]: a pool slot released twice"), "a double release did not abort");
  CHECK(Aborts([&] { pool->Release(2); }, "a pool slot outside the pool released"), "releasing slot 2 of 2 did not abort");
  CHECK(Aborts([&] { pool->Return(nullptr, -3, kBlock); }, "request memory of an unknown kind"), "an unknown memory kind did not abort");
  CHECK(Aborts([] {
    DeviceModel m = Model();
    m.tokensPerSec = std::nan("");
    Scheduler s(m);
  }, "the device model's rate is not a finite non-negative number"), "a NaN model did not abort the scheduler");
  // Outside input is not an assertion: Open refuses such a model with EINVAL.
  EngineOptions o = TempOptions(1 << 20, 4);
  o.model.tokensPerSec = std::nan("");
  EngineError err;
  auto e = Engine::Open(o, [](std::vector<Completion>&&) {}, &err);
  CHECK(!e && err.errnum == EINVAL, "a NaN model: errnum %d", err.errnum);
  unlink(o.path.c_str());
  // The pool is still whole after the children's aborts (they had copies).
  CHECK(pool->Acquire() >= 0 && pool->Acquire() >= 0 && pool->Acquire() == -1, "pool slots");
}

int main() {
  AssertionsAbort();
  Integrity();
  ShutdownWithQueue();
  InlineMode();
  PoolBatches();
  LargeCache();
  BadOpen();
  if (failures) {
    std::fprintf(stderr, "engine: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("engine: all checks passed\n");
  return 0;
}
