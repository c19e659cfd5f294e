// Closed-loop load through the engine from C++ (no JavaScript): the engine's
// own ceiling, next to fio and to the same load driven from JS (bench/nvme.ts).
//   engine_bench PATH randread|read|write BLOCK_BYTES DEPTH SECONDS
// Prints one JSON line: {"iops":…,"bytesPerSec":…,"p50Us":…,"p99Us":…}.
// Completions resubmit from the engine thread's handler, through the pool.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../src/engine.h"

using namespace pocket;

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: engine_bench PATH randread|read|write BLOCK_BYTES DEPTH SECONDS\n");
    return 2;
  }
  const std::string rw = argv[2];
  const uint32_t bs = uint32_t(std::strtoul(argv[3], nullptr, 10));
  const unsigned depth = unsigned(std::strtoul(argv[4], nullptr, 10));
  const double seconds = std::strtod(argv[5], nullptr);
  if ((rw != "randread" && rw != "read" && rw != "write") || bs == 0 || bs % kBlock != 0 || depth == 0 || depth > 1024 || !(seconds > 0)) {
    std::fprintf(stderr, "engine_bench: bad arguments\n");
    return 2;
  }
  EngineOptions o;
  o.path = argv[1];
  o.queueDepth = std::max(64u, depth * 2);
  o.poolBuffers = depth * 2;
  o.poolBufferBytes = bs;
  o.model = DeviceModel{1e12, 100, 1000, 1000};
  const bool write = rw == "write";
  std::vector<double> latencies;
  latencies.reserve(1 << 22);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> outstanding{0};
  Engine* engine = nullptr;
  BufferPool* pool = nullptr;
  uint64_t blocks = 0;
  uint64_t seq = 0;
  uint64_t nextId = 1;
  std::mt19937_64 rng(12345);
  std::vector<uint64_t> started(1 << 16);
  const auto now = [] { return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count()); };
  // Engine thread (and main, before the first submission): one request.
  const auto make = [&] {
    Request r;
    r.id = nextId++;
    r.tenant = 1;
    r.write = write;
    r.length = bs;
    r.offset = (rw == "randread" ? rng() % blocks : seq++ % blocks) * uint64_t(bs);
    r.pool = pool->Acquire();
    r.buffer = r.pool >= 0 ? pool->At(r.pool) : AllocateAligned(bs);
    if (write && r.pool < 0) std::memset(r.buffer, 0x5a, bs);
    started[r.id & 0xffff] = now();
    return r;
  };
  const auto submit = [&](const Request* rs, size_t n) {
    outstanding += unsigned(n);
    std::vector<int32_t> rcs(n);
    engine->SubmitBatch(rs, n, rcs.data());
    for (int32_t rc : rcs) {
      if (rc != 0) {
        std::fprintf(stderr, "engine_bench: submit refused (%d)\n", rc);
        std::exit(1);
      }
    }
  };
  EngineError err;
  auto e = Engine::Open(o, [&](std::vector<Completion>&& done) {
    const uint64_t t = now();
    for (auto& c : done) {
      outstanding--;
      if (c.result != int32_t(bs)) {
        std::fprintf(stderr, "engine_bench: I/O failed (%d)\n", c.result);
        std::exit(1);
      }
      if (c.pool >= 0) pool->Release(c.pool);
      else std::free(c.buffer);
      if (stop.load(std::memory_order_relaxed)) continue;
      latencies.push_back(double(t - started[c.id & 0xffff]) / 1000);
      const Request r = make();
      submit(&r, 1);
    }
  }, &err);
  if (!e) {
    std::fprintf(stderr, "engine_bench: %s\n", err.message.c_str());
    return 1;
  }
  engine = e.get();
  pool = e->pool().get();
  blocks = e->capacityBytes() / bs;
  for (unsigned i = 0; i < pool->count(); i++) std::memset(pool->At(int32_t(i)), 0x5a, bs);
  e->AddBestEffort(1);
  // The first requests are built before any is submitted (the handler shares rng and ids).
  std::vector<Request> first;
  for (unsigned i = 0; i < depth; i++) first.push_back(make());
  const uint64_t t0 = now();
  submit(first.data(), first.size());
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  const uint64_t t1 = now();
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  e->Close(nullptr);
  e->Join();
  // Only the engine thread touched `latencies`, and it has ended. Completions after the stop are not counted.
  std::vector<double> lat = std::move(latencies);
  const size_t ops = lat.size();
  std::sort(lat.begin(), lat.end());
  const double secs = double(t1 - t0) / 1e9;
  const auto pct = [&](double q) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, size_t(q * double(lat.size())))]; };
  std::printf("{\"iops\":%.1f,\"bytesPerSec\":%.1f,\"p50Us\":%.1f,\"p99Us\":%.1f}\n", double(ops) / secs, double(ops) * bs / secs, pct(0.5), pct(0.99));
  return 0;
}
