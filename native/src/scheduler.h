// ReFlex-style QoS scheduler for one flash device: latency-critical (LC)
// tenants earn tokens at a reserved rate; best-effort (BE) tenants share what
// is left, round-robin. Deterministic: time comes in as an argument, never
// from a clock. Runs on the engine thread only; not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace pocket {

// What the device sustains within a latency limit (from `pocket calibrate`).
struct DeviceModel {
  double tokensPerSec = 0;      // sustainable token rate at the latency limit
  uint32_t readCost = 100;      // tokens per 4 KiB read
  uint32_t writeCost = 1000;    // tokens per 4 KiB write
  double latencyLimitUs = 500;  // the p95 the rate was measured at
};

struct Slo {
  double iops = 0;         // 4 KiB operations per second
  double readRatio = 1.0;  // 0..1
  double p95Us = 0;        // latency limit the tenant asks for
};

struct Request {
  uint64_t id = 0;
  uint32_t tenant = 0;
  bool write = false;
  uint64_t offset = 0;
  uint32_t length = 0;
  // Carried for the engine (the request's memory: a pool slot, or its own allocation); never read here.
  void* buffer = nullptr;
  int32_t pool = -1;
};

enum class Mode { Qos, Fifo };

class Scheduler {
 public:
  // deficitMax: how far (tokens) an LC tenant may go below zero;
  // burstMax: unused LC tokens kept per tenant (the rest is donated to BE).
  // Each LC tenant's own bounds are at least `kBurstWindowSec` of its rate, so a tenant
  // whose requests arrive in bursts (timers, batches) within its rate is not queued behind itself.
  explicit Scheduler(DeviceModel model, double deficitMax = 0, double burstMax = 0, size_t queueMax = 4096);

  // Admission: refuses (returns false, `why` says why) a reservation the device
  // cannot serve at the strictest SLO among LC tenants.
  bool AddLatencyCritical(uint32_t tenant, const Slo& slo, std::string* why);
  void AddBestEffort(uint32_t tenant);
  // Drops a tenant and returns its queued requests (to fail them).
  std::vector<Request> RemoveTenant(uint32_t tenant);
  bool HasTenant(uint32_t tenant) const { return tenants_.count(tenant) != 0; }

  // Queues a request; false when its tenant is unknown or its queue is full.
  bool Enqueue(const Request& r);
  // One scheduling round at `nowNs`: appends up to `max` requests to submit. With no
  // latency-critical tenant the round is work-conserving: best-effort tenants share the
  // whole device round-robin (the model's rate protects LC latency; with no LC tenant
  // there is nothing to protect, and holding BE to it would only leave the device idle).
  void Schedule(uint64_t nowNs, size_t max, std::vector<Request>* out);
  // Requests of every tenant, oldest first per tenant (for shutdown).
  std::vector<Request> DrainAll();

  uint64_t Cost(const Request& r) const;
  double ReservedTokensPerSec() const { return reserved_; }
  double TokensOf(uint32_t tenant) const;
  size_t Queued() const { return queued_; }
  // Switching to FIFO serves what is queued in tenant order, then arrival order.
  void SetMode(Mode m);
  Mode mode() const { return mode_; }
  const DeviceModel& model() const { return model_; }
  // Tokens given by LC tenants to the BE pool so far (donation).
  double Donated() const { return donated_; }

 private:
  static constexpr double kBurstWindowSec = 0.002;
  struct Tenant {
    bool lc = false;
    double rate = 0;    // tokens/s (LC)
    double deficitMax = 0;  // LC: its bounds
    double burstMax = 0;
    double tokens = 0;  // balance
    double demand = 0;  // tokens its queue costs
    std::deque<Request> queue;
  };
  // Takes the tenant's oldest request into `out`.
  void Pop(Tenant& t, std::vector<Request>* out);
  void ScheduleFifo(size_t max, std::vector<Request>* out);
  // Moves the clock to `nowNs` (never backwards); returns the seconds elapsed since the last round.
  double Advance(uint64_t nowNs);
  // One LC tenant's turn: earns at its rate, submits down to its deficit bound, donates beyond its burst bound.
  void ServeLatencyCritical(Tenant& t, double dt, size_t max, std::vector<Request>* out);
  // BE tenants share the pool left by reservations and donations, round-robin.
  void ServeBestEffort(double dt, size_t max, std::vector<Request>* out);
  // Metered BE: gives each waiting BE tenant an equal share of the pool, up to what its queue needs.
  void ShareBestEffortPool(const std::vector<Tenant*>& be, size_t start);
  // Pops from the BE tenants in turn, from `start`, while any can pay (or unmetered: has work) and `out` has room.
  void RoundRobin(const std::vector<Tenant*>& be, size_t start, bool metered, size_t max, std::vector<Request>* out);
  // Asserts the accounting after a round: the waiting BE tenants' balances, the BE pool and the reserved rate within bounds.
  void CheckRound(const std::vector<Tenant*>& be) const;
  // Rounding tolerance for token sums near `magnitude` (a millionth of it): far above float error, far below a request's cost.
  static double Slack(double magnitude);

  DeviceModel model_;
  double deficitMax_;
  double burstMax_;
  size_t queueMax_;
  std::map<uint32_t, Tenant> tenants_;  // ordered: deterministic rounds
  std::deque<uint64_t> arrival_;        // FIFO mode: tenants in arrival order
  double reserved_ = 0;
  double strictestUs_ = 0;
  double bePool_ = 0;
  double donated_ = 0;
  uint64_t lastNs_ = 0;
  bool started_ = false;
  size_t queued_ = 0;
  double costMax_ = 0;  // the largest cost ever queued: how far past its deficit bound an LC balance can go
  size_t lcTenants_ = 0;
  uint32_t rrNext_ = 0;  // BE round-robin position (tenant id to start from)
  Mode mode_ = Mode::Qos;
};

}  // namespace pocket
