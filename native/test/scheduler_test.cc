// Unit tests of the QoS scheduler: simulated time, no device.
//   bash scripts/native-test.sh   (also under AddressSanitizer: --asan)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "../src/scheduler.h"

using namespace pocket;

static DeviceModel Model() {
  DeviceModel m;
  m.tokensPerSec = 1e6;
  m.readCost = 100;
  m.writeCost = 1000;
  m.latencyLimitUs = 500;
  return m;
}

// Runs `seconds` of rounds every `stepUs`, keeping the named tenants' queues topped up;
// returns requests submitted per tenant.
static std::map<uint32_t, long> Run(Scheduler& s, double seconds, const std::map<uint32_t, bool>& saturate, double stepUs = 100,
                                    const std::function<void()>& afterRound = nullptr, double warmupSeconds = 0) {
  std::map<uint32_t, long> served;
  uint64_t id = 1;
  std::vector<Request> out;
  for (uint64_t t = 0; t <= uint64_t(seconds * 1e9); t += uint64_t(stepUs * 1000)) {
    for (const auto& [tenant, write] : saturate) {
      while (s.Enqueue(Request{id, tenant, write, 0, 4096})) id++;
    }
    out.clear();
    s.Schedule(t, 1 << 20, &out);
    if (t >= uint64_t(warmupSeconds * 1e9)) for (const auto& r : out) served[r.tenant]++;
    if (afterRound) afterRound();
  }
  return served;
}

static void AdmissionRefusal() {
  std::printf("admission refusal\n");
  Scheduler s(Model());
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{5000, 1.0, 1000}, &why), "%s", why.c_str());
  CHECK(std::abs(s.ReservedTokensPerSec() - 5e5) < 1, "reserved %f", s.ReservedTokensPerSec());
  CHECK(!s.AddLatencyCritical(2, Slo{6000, 1.0, 1000}, &why), "6000 IOPS more should not fit");
  CHECK(why.find("does not fit") != std::string::npos, "why: %s", why.c_str());
  CHECK(!s.AddLatencyCritical(3, Slo{100, 1.0, 100}, &why), "a p95 below the model's should be refused");
  CHECK(!s.AddLatencyCritical(4, Slo{0, 1.0, 1000}, &why), "an SLO without IOPS should be refused");
  CHECK(!s.AddLatencyCritical(4, Slo{std::nan(""), 1.0, 1000}, &why), "NaN IOPS should be refused");
  CHECK(!s.AddLatencyCritical(4, Slo{100, std::nan(""), 1000}, &why), "a NaN read ratio should be refused");
  CHECK(!s.AddLatencyCritical(4, Slo{HUGE_VAL, 1.0, 1000}, &why), "infinite IOPS should be refused");
  // A mixed SLO costs writes at the write price: 400 IOPS × (0.5×100 + 0.5×1000) = 220000.
  CHECK(s.AddLatencyCritical(5, Slo{400, 0.5, 1000}, &why), "%s", why.c_str());
  CHECK(std::abs(s.ReservedTokensPerSec() - 7.2e5) < 1, "reserved %f", s.ReservedTokensPerSec());
  s.RemoveTenant(1);
  CHECK(std::abs(s.ReservedTokensPerSec() - 2.2e5) < 1, "reserved after removal %f", s.ReservedTokensPerSec());
  CHECK(s.AddLatencyCritical(2, Slo{6000, 1.0, 1000}, &why), "fits once tenant 1 is gone: %s", why.c_str());
}

static void ReservationHonoured() {
  std::printf("reservation honoured under best-effort load\n");
  Scheduler s(Model());
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{5000, 1.0, 1000}, &why), "%s", why.c_str());
  s.AddBestEffort(2);
  // Counted over the second after a warm-up second (the first round may run on credit).
  auto served = Run(s, 2.0, {{1, false}, {2, true}}, 100, nullptr, 1.0);
  // LC: 5000 reads/s; BE: the other 5e5 tokens/s as 1000-token writes = 500/s.
  CHECK(std::abs(served[1] - 5000) <= 5000 * 0.02, "LC served %ld, want ~5000", served[1]);
  CHECK(std::abs(served[2] - 500) <= 500 * 0.05, "BE served %ld, want ~500", served[2]);
}

static void BestEffortFairness() {
  std::printf("best-effort fairness\n");
  Scheduler s(Model());
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{100, 1.0, 1000}, &why), "%s", why.c_str());  // idle: its tokens are donated
  s.AddBestEffort(7);
  s.AddBestEffort(9);
  s.AddBestEffort(11);
  auto served = Run(s, 1.0, {{7, false}, {9, false}, {11, false}});
  const long total = served[7] + served[9] + served[11];
  CHECK(std::abs(total - 10000) <= 10000 * 0.02, "total %ld, want ~10000 reads", total);
  for (uint32_t t : {7u, 9u, 11u}) CHECK(std::abs(served[t] - total / 3.0) <= total / 3.0 * 0.05, "tenant %u served %ld of %ld", t, served[t], total);
}

static void WorkConservingWithoutLatencyCritical() {
  std::printf("no latency-critical tenant: best-effort tenants share the whole device, round-robin\n");
  Scheduler s(Model());
  s.AddBestEffort(3);
  s.AddBestEffort(4);
  std::vector<Request> out;
  uint64_t id = 1;
  long served3 = 0, served4 = 0;
  for (int round = 0; round < 100; round++) {
    for (int k = 0; k < 64; k++) {
      s.Enqueue(Request{id++, 3, true, 0, 128 * 1024});
      s.Enqueue(Request{id++, 4, false, 0, 4096});
    }
    out.clear();
    s.Schedule(uint64_t(round) * 1000, 32, &out);  // 1 µs apart: the model would allow a fraction of one write
    CHECK(out.size() == 32, "round %d: %zu of 32 slots used", round, out.size());
    for (const auto& r : out) (r.tenant == 3 ? served3 : served4)++;
  }
  CHECK(served3 == served4, "round-robin: %ld vs %ld", served3, served4);
  // Once a reservation exists, best-effort is metered again.
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{100, 1.0, 1000}, &why), "%s", why.c_str());
  out.clear();
  s.Schedule(100 * 1000 + 1000, 32, &out);
  CHECK(out.size() < 32, "metered after a reservation: %zu", out.size());
}

static void DeficitBound() {
  std::printf("deficit bound\n");
  const double deficitMax = 20000;
  Scheduler s(Model(), deficitMax);
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{1000, 0.0, 1000}, &why), "%s", why.c_str());  // 1e6 tokens/s of writes... all of it
  double lowest = 0;
  uint64_t id = 1;
  std::vector<Request> out;
  for (uint64_t t = 0; t < 100'000'000; t += 100'000) {
    // Large writes: 128 KiB = 32 pages × 1000 tokens = 32000 each.
    while (s.Enqueue(Request{id, 1, true, 0, 128 * 1024})) id++;
    out.clear();
    s.Schedule(t, 1 << 20, &out);
    lowest = std::min(lowest, s.TokensOf(1));
  }
  CHECK(lowest >= -deficitMax, "tokens went to %f, below -%f", lowest, deficitMax);
  CHECK(lowest < 0, "a large request should run on credit (lowest %f)", lowest);
}

static void BurstWithinRate() {
  std::printf("a latency-critical burst within a few ms of its rate goes out at once\n");
  DeviceModel m = Model();
  m.tokensPerSec = 1e8;
  Scheduler s(m);
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{200000, 1.0, 1000}, &why), "%s", why.c_str());  // 2e7 tokens/s: 2 ms = 400 reads
  std::vector<Request> out;
  s.Schedule(0, 1 << 20, &out);
  s.Schedule(9'000'000, 1 << 20, &out);  // idle 9 ms: savings capped at 400 reads
  for (uint64_t i = 0; i < 900; i++) s.Enqueue(Request{i + 1, 1, false, 0, 4096});
  s.Schedule(10'000'000, 1 << 20, &out);  // 400 saved + 200 earned + 400 on credit
  CHECK(out.size() == 900, "%zu of a 900-read burst went out", out.size());
}

static void LargeRequestStillServed() {
  std::printf("a latency-critical request costing more than savings and credit goes, then its debt is paid\n");
  Scheduler s(Model());  // bounds: 32 writes' worth (32000 tokens) each
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{100, 0.0, 1000}, &why), "%s", why.c_str());  // 100 writes/s = 1e5 tokens/s
  std::vector<Request> out;
  uint64_t id = 1;
  int served = 0;
  double lowest = 0;
  // 2 MiB writes: 512 pages × 1000 = 512000 tokens each, 16× the bound.
  for (uint64_t t = 0; t <= 30'000'000'000ull; t += 1'000'000) {
    while (s.Enqueue(Request{id, 1, true, 0, 2 << 20})) id++;
    out.clear();
    s.Schedule(t, 64, &out);
    served += int(out.size());
    lowest = std::min(lowest, s.TokensOf(1));
  }
  // 30 s at 1e5 tokens/s pays for ~5.9 of them (one more on the initial savings).
  CHECK(served >= 5 && served <= 7, "served %d large writes in 30 s, want ~6", served);
  CHECK(lowest >= -512000.0, "debt %f beyond one request", lowest);
}

static void Donation() {
  std::printf("donation of unused latency-critical tokens\n");
  Scheduler s(Model());
  std::string why;
  CHECK(s.AddLatencyCritical(1, Slo{5000, 1.0, 1000}, &why), "%s", why.c_str());  // reserves half, sends nothing
  s.AddBestEffort(2);
  auto served = Run(s, 1.0, {{2, false}});
  CHECK(s.Donated() > 4e5, "donated %f tokens, want most of 5e5", s.Donated());
  CHECK(served[2] >= 10000 * 0.95, "BE served %ld reads, want ~10000 (the whole device)", served[2]);
}

static void FifoOrder() {
  std::printf("FIFO mode serves in arrival order\n");
  Scheduler s(Model());
  std::string why;
  s.AddLatencyCritical(1, Slo{10, 1.0, 1000}, &why);
  s.AddBestEffort(2);
  s.SetMode(Mode::Fifo);
  std::vector<uint32_t> order = {2, 2, 1, 2, 1, 1, 2};
  for (size_t i = 0; i < order.size(); i++) s.Enqueue(Request{i + 1, order[i], false, 0, 4096});
  std::vector<Request> out;
  s.Schedule(0, 3, &out);
  s.Schedule(1, 100, &out);
  CHECK(out.size() == order.size(), "served %zu", out.size());
  for (size_t i = 0; i < out.size(); i++) CHECK(out[i].id == i + 1, "position %zu got id %llu", i, (unsigned long long)out[i].id);
}

static void BoundsAndShutdown() {
  std::printf("queue bound, unknown tenant, drain on shutdown\n");
  Scheduler s(Model(), 0, 0, 8);
  s.AddBestEffort(1);
  int accepted = 0;
  for (int i = 0; i < 20; i++) accepted += s.Enqueue(Request{uint64_t(i), 1, false, 0, 4096}) ? 1 : 0;
  CHECK(accepted == 8, "accepted %d, want the queue bound 8", accepted);
  CHECK(!s.Enqueue(Request{99, 42, false, 0, 4096}), "an unknown tenant's request must be refused");
  auto left = s.DrainAll();
  CHECK(left.size() == 8 && s.Queued() == 0, "drained %zu, queued %zu", left.size(), s.Queued());
}

static void Deterministic() {
  std::printf("deterministic\n");
  auto once = [] {
    Scheduler s(Model());
    std::string why;
    s.AddLatencyCritical(1, Slo{3000, 0.7, 1000}, &why);
    s.AddBestEffort(2);
    s.AddBestEffort(3);
    return Run(s, 0.2, {{1, false}, {2, true}, {3, false}}, 37);
  };
  CHECK(once() == once(), "two runs differ");
}

int main() {
  AdmissionRefusal();
  ReservationHonoured();
  BestEffortFairness();
  WorkConservingWithoutLatencyCritical();
  DeficitBound();
  BurstWithinRate();
  LargeRequestStillServed();
  Donation();
  FifoOrder();
  BoundsAndShutdown();
  Deterministic();
  if (failures) {
    std::fprintf(stderr, "scheduler: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("scheduler: all checks passed\n");
  return 0;
}
