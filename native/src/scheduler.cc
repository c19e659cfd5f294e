#include "scheduler.h"

#include <algorithm>
#include <cmath>

#include "assert.h"

namespace pocket {

namespace {
constexpr uint64_t kPage = 4096;
}

Scheduler::Scheduler(DeviceModel model, double deficitMax, double burstMax, size_t queueMax)
    : model_(model), deficitMax_(deficitMax), burstMax_(burstMax), queueMax_(queueMax) {
  // Defaults: one 128 KiB write's worth of credit, and of savings.
  if (deficitMax_ <= 0) deficitMax_ = double(model_.writeCost) * 32;
  if (burstMax_ <= 0) burstMax_ = double(model_.writeCost) * 32;
  POCKET_ASSERT(std::isfinite(model_.tokensPerSec) && model_.tokensPerSec >= 0, "the device model's rate is not a finite non-negative number");
  POCKET_ASSERT(std::isfinite(deficitMax_) && deficitMax_ >= 0 && std::isfinite(burstMax_) && burstMax_ >= 0, "deficit or burst bound not a finite non-negative number");
}

double Scheduler::Slack(double magnitude) {
  return 1e-6 * (1 + std::fabs(magnitude));
}

uint64_t Scheduler::Cost(const Request& r) const {
  const uint64_t pages = std::max<uint64_t>(1, (uint64_t(r.length) + kPage - 1) / kPage);
  return pages * (r.write ? model_.writeCost : model_.readCost);
}

bool Scheduler::AddLatencyCritical(uint32_t tenant, const Slo& slo, std::string* why) {
  if (tenants_.count(tenant)) {
    if (why) *why = "tenant already registered";
    return false;
  }
  // Written so that NaN fails each test (a NaN rate would poison every later admission).
  if (!(slo.iops > 0 && std::isfinite(slo.iops)) || !(slo.readRatio >= 0 && slo.readRatio <= 1) || !(slo.p95Us > 0)) {
    if (why) *why = "an SLO needs a finite iops > 0, 0 <= readRatio <= 1 and p95Us > 0";
    return false;
  }
  if (slo.p95Us < model_.latencyLimitUs) {
    if (why) *why = "the device model was measured at a p95 of " + std::to_string(model_.latencyLimitUs) + " us; it cannot promise " + std::to_string(slo.p95Us) + " us";
    return false;
  }
  const double rate = slo.iops * (slo.readRatio * model_.readCost + (1 - slo.readRatio) * model_.writeCost);
  if (reserved_ + rate > model_.tokensPerSec) {
    if (why) *why = "reservation of " + std::to_string(rate) + " tokens/s does not fit: " + std::to_string(reserved_) + " of " + std::to_string(model_.tokensPerSec) + " already reserved";
    return false;
  }
  Tenant t;
  t.lc = true;
  t.rate = rate;
  t.deficitMax = std::max(deficitMax_, rate * kBurstWindowSec);
  t.burstMax = std::max(burstMax_, rate * kBurstWindowSec);
  tenants_.emplace(tenant, std::move(t));
  reserved_ += rate;
  lcTenants_++;
  POCKET_ASSERT(std::isfinite(rate) && rate >= 0 && reserved_ <= model_.tokensPerSec, "an admitted reservation is not a sane rate within the device's");
  strictestUs_ = strictestUs_ == 0 ? slo.p95Us : std::min(strictestUs_, slo.p95Us);
  return true;
}

void Scheduler::AddBestEffort(uint32_t tenant) {
  if (!tenants_.count(tenant)) tenants_.emplace(tenant, Tenant{});
}

std::vector<Request> Scheduler::RemoveTenant(uint32_t tenant) {
  std::vector<Request> out;
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return out;
  out.assign(it->second.queue.begin(), it->second.queue.end());
  POCKET_ASSERT(queued_ >= out.size(), "a tenant holds more requests than are queued in all");
  queued_ -= out.size();
  if (it->second.lc) {
    POCKET_ASSERT(lcTenants_ > 0, "removing a latency-critical tenant none of which is counted");
    reserved_ -= it->second.rate;
    lcTenants_--;
  }
  tenants_.erase(it);
  arrival_.erase(std::remove(arrival_.begin(), arrival_.end(), uint64_t(tenant)), arrival_.end());
  return out;
}

bool Scheduler::Enqueue(const Request& r) {
  auto it = tenants_.find(r.tenant);
  if (it == tenants_.end() || it->second.queue.size() >= queueMax_) return false;
  it->second.queue.push_back(r);
  const double c = double(Cost(r));
  it->second.demand += c;
  costMax_ = std::max(costMax_, c);
  arrival_.push_back(r.tenant);
  queued_++;
  POCKET_ASSERT(it->second.queue.size() <= queueMax_, "a tenant's queue past its bound");
  return true;
}

void Scheduler::Pop(Tenant& t, std::vector<Request>* out) {
  POCKET_ASSERT(!t.queue.empty() && queued_ > 0, "a pop from an empty queue");
  const Request& r = t.queue.front();
  const double c = double(Cost(r));
  // The demand is the sum of the queue's costs: it covers the oldest one (up to rounding).
  POCKET_ASSERT(c >= 0 && t.demand + Slack(t.demand) >= c, "a queued request's cost is negative or beyond its tenant's demand");
  t.demand = std::max(0.0, t.demand - c);
  out->push_back(r);
  t.queue.pop_front();
  queued_--;
}

void Scheduler::ScheduleFifo(size_t max, std::vector<Request>* out) {
  POCKET_ASSERT(arrival_.size() == queued_, "FIFO mode: not one arrival per queued request");
  while (out->size() < max && !arrival_.empty()) {
    const uint32_t tenant = uint32_t(arrival_.front());
    arrival_.pop_front();
    auto it = tenants_.find(tenant);
    if (it == tenants_.end() || it->second.queue.empty()) continue;
    Pop(it->second, out);
  }
}

void Scheduler::Schedule(uint64_t nowNs, size_t max, std::vector<Request>* out) {
  const double dt = Advance(nowNs);
  if (mode_ == Mode::Fifo) {
    ScheduleFifo(max, out);
    return;
  }
  // Arrival order is only kept for FIFO; in QoS mode it is rebuilt from the queues when switching.
  arrival_.clear();
  const size_t before = out->size();
  for (auto& [id, t] : tenants_) {
    if (t.lc) ServeLatencyCritical(t, dt, max, out);
  }
  ServeBestEffort(dt, max, out);
  POCKET_ASSERT(out->size() <= std::max(max, before), "a round handed out more requests than it was asked for");
}

double Scheduler::Advance(uint64_t nowNs) {
  if (!started_) {
    started_ = true;
    lastNs_ = nowNs;
  }
  const double dt = nowNs > lastNs_ ? double(nowNs - lastNs_) / 1e9 : 0;
  lastNs_ = std::max(lastNs_, nowNs);
  return dt;
}

void Scheduler::ServeLatencyCritical(Tenant& t, double dt, size_t max, std::vector<Request>* out) {
  t.tokens += t.rate * dt;
  while (!t.queue.empty() && out->size() < max) {
    const double c = double(Cost(t.queue.front()));
    // Within the deficit bound; or, for a request costing more than savings and credit together
    // could ever cover, once savings are full (it goes, and the debt is paid back at the rate
    // before the next one: otherwise it would wait for ever).
    if (t.tokens - c < -t.deficitMax && t.tokens < t.burstMax) break;
    t.tokens -= c;
    Pop(t, out);
  }
  if (t.tokens > t.burstMax) {
    const double extra = t.tokens - t.burstMax;
    donated_ += extra;
    bePool_ += extra;
    t.tokens = t.burstMax;
  }
  // Below the deficit bound only after a request larger than both bounds, and by at most its cost.
  const double floor = std::min(-t.deficitMax, t.burstMax - costMax_);
  POCKET_ASSERT(t.tokens <= t.burstMax && t.tokens >= floor - Slack(floor), "a latency-critical balance is outside its bounds");
}

void Scheduler::ServeBestEffort(double dt, size_t max, std::vector<Request>* out) {
  // Best-effort tenants share what is left, round-robin; each keeps at most what its queue needs.
  bePool_ += std::max(0.0, model_.tokensPerSec - reserved_) * dt;
  std::vector<Tenant*> be;
  std::vector<uint32_t> ids;
  for (auto& [id, t] : tenants_) {
    if (!t.lc && !t.queue.empty()) {
      be.push_back(&t);
      ids.push_back(id);
    }
  }
  if (!be.empty()) {
    // Start from the tenant after the last one served first, so no one always goes first.
    size_t start = 0;
    while (start < ids.size() && ids[start] < rrNext_) start++;
    if (start == ids.size()) start = 0;
    const bool metered = lcTenants_ > 0;
    if (metered) ShareBestEffortPool(be, start);
    RoundRobin(be, start, metered, max, out);
    rrNext_ = ids[(start + 1) % ids.size()];
  }
  // Unspent pool does not pile up while no BE tenant waits: at most one round's worth of the device.
  bePool_ = std::min(bePool_, model_.tokensPerSec * 0.001);
  CheckRound(be);
}

void Scheduler::ShareBestEffortPool(const std::vector<Tenant*>& be, size_t start) {
  const double share = bePool_ / double(be.size());
  double leftover = 0;
  for (size_t k = 0; k < be.size(); k++) {
    Tenant& t = *be[(start + k) % be.size()];
    const double before = t.tokens;
    t.tokens = std::min(t.tokens + share, std::max(before, t.demand));
    leftover += share - (t.tokens - before);  // saved tokens are bounded by demand; the rest stays in the pool
  }
  bePool_ = leftover;
}

void Scheduler::RoundRobin(const std::vector<Tenant*>& be, size_t start, bool metered, size_t max, std::vector<Request>* out) {
  bool progress = true;
  while (progress && out->size() < max) {
    progress = false;
    for (size_t k = 0; k < be.size() && out->size() < max; k++) {
      Tenant& t = *be[(start + k) % be.size()];
      if (t.queue.empty()) continue;
      if (metered) {
        const double c = double(Cost(t.queue.front()));
        if (t.tokens < c) continue;
        t.tokens -= c;
      }
      Pop(t, out);
      progress = true;
    }
  }
}

void Scheduler::CheckRound(const std::vector<Tenant*>& be) const {
  const double tps = model_.tokensPerSec;
  const double poolMax = tps * 0.001;
  POCKET_ASSERT(bePool_ >= -Slack(poolMax) && bePool_ <= poolMax, "the best-effort pool is outside [0, one round of the device]");
  POCKET_ASSERT(reserved_ >= -Slack(tps) && reserved_ <= tps + Slack(tps), "the reserved rate is outside [0, the device's rate]");
  // A BE tenant spends only tokens it has; its share is never negative (up to rounding).
  for (const Tenant* t : be) POCKET_ASSERT(t->tokens >= -Slack(poolMax), "a best-effort balance went negative");
}

std::vector<Request> Scheduler::DrainAll() {
  std::vector<Request> out;
  for (auto& [id, t] : tenants_) {
    for (const auto& r : t.queue) out.push_back(r);
    t.queue.clear();
    t.demand = 0;
  }
  arrival_.clear();
  queued_ = 0;
  return out;
}

void Scheduler::SetMode(Mode m) {
  if (m == Mode::Fifo && mode_ != Mode::Fifo) {
    arrival_.clear();
    for (const auto& [id, t] : tenants_) for (size_t i = 0; i < t.queue.size(); i++) arrival_.push_back(id);
  }
  mode_ = m;
}

double Scheduler::TokensOf(uint32_t tenant) const {
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? 0 : it->second.tokens;
}

}  // namespace pocket
