#include "engine.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <future>

namespace pocket {

namespace {

uint64_t NowNs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

bool Fail(EngineError* error, int errnum, const char* op, const std::string& what) {
  if (error) {
    error->errnum = errnum;
    error->op = op;
    error->message = what + ": " + std::strerror(errnum);
  }
  return false;
}

}  // namespace

void* AllocateAligned(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kBlock, bytes == 0 ? kBlock : bytes) != 0) return nullptr;
  return p;
}

std::shared_ptr<BufferPool> BufferPool::Create(uint32_t count, uint32_t bytes, size_t largeCacheBytes) {
  if (count == 0 || bytes == 0 || bytes % kBlock != 0) return nullptr;
  std::shared_ptr<BufferPool> p(new BufferPool());
  p->base_ = AllocateAligned(size_t(count) * bytes);
  if (!p->base_) return nullptr;
  p->count_ = count;
  p->bytes_ = bytes;
  p->largeMax_ = largeCacheBytes;
  p->free_.reserve(count);
  for (uint32_t i = count; i > 0; i--) p->free_.push_back(int32_t(i - 1));
  p->taken_.assign(count, 0);
  return p;
}

BufferPool::~BufferPool() {
  std::free(base_);
  for (auto& blocks : large_) for (void* b : blocks) std::free(b);
}

namespace {
// The power-of-two class of a size (its exponent), at least a block.
int LargeClass(size_t bytes) {
  int c = 12;
  while ((size_t(1) << c) < bytes) c++;
  return c;
}
}  // namespace

void* BufferPool::TakeLarge(size_t bytes) {
  const int c = LargeClass(bytes);
  if (c >= kLargeClasses) return nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!large_[c].empty()) {
      void* p = large_[c].back();
      large_[c].pop_back();
      POCKET_ASSERT(largeCached_ >= size_t(1) << c, "the large-block cache holds less than a block it lists");
      largeCached_ -= size_t(1) << c;
      return p;
    }
  }
  return AllocateAligned(size_t(1) << c);
}

void BufferPool::GiveLarge(void* p, size_t bytes) {
  if (p == nullptr) return;
  const int c = LargeClass(bytes);
  POCKET_ASSERT(c < kLargeClasses, "a large block given back that TakeLarge cannot have handed out");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (largeCached_ + (size_t(1) << c) <= largeMax_) {
      large_[c].push_back(p);
      largeCached_ += size_t(1) << c;
      POCKET_ASSERT(largeCached_ <= largeMax_, "the large-block cache past its bound");
      return;
    }
  }
  std::free(p);
}

void BufferPool::Return(void* buffer, int32_t pool, size_t bytes) {
  POCKET_ASSERT(pool >= 0 || pool == kOwnMemory || pool == kCachedMemory, "request memory of an unknown kind");
  if (pool >= 0) Release(pool);
  else if (pool == kCachedMemory) GiveLarge(buffer, bytes);
  else std::free(buffer);
}

size_t BufferPool::cachedBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return largeCached_;
}

int32_t BufferPool::Acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return -1;
  const int32_t slot = free_.back();
  free_.pop_back();
  POCKET_ASSERT(slot >= 0 && uint32_t(slot) < count_ && !taken_[size_t(slot)], "a free pool slot was already handed out");
  taken_[size_t(slot)] = 1;
  return slot;
}

void BufferPool::Release(int32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  POCKET_ASSERT(slot >= 0 && uint32_t(slot) < count_, "a pool slot outside the pool released");
  POCKET_ASSERT(taken_[size_t(slot)], "a pool slot released twice (or never acquired)");
  POCKET_ASSERT(free_.size() < count_, "more pool slots free than the pool has");
  taken_[size_t(slot)] = 0;
  free_.push_back(slot);
}

// Caller's thread: checks the options, opens the device, sets up the ring and the pool, starts the engine thread.
std::unique_ptr<Engine> Engine::Open(const EngineOptions& o, Handler handler, EngineError* error) {
  std::unique_ptr<Engine> e(new Engine());
  if (o.queueDepth == 0 || o.queueDepth > 4096) {
    Fail(error, EINVAL, "open", "queue depth must be 1..4096");
    return nullptr;
  }
  if (!(std::isfinite(o.model.tokensPerSec) && o.model.tokensPerSec >= 0)) {
    Fail(error, EINVAL, "open", "the device model's tokensPerSec must be a finite number >= 0");
    return nullptr;
  }
  if (!e->OpenDevice(o, error) || !e->SetUpRing(o, error) || !e->SetUpPool(o, error)) return nullptr;
  e->Configure(o, std::move(handler));
  if (!(o.inlineMode ? e->StartInline(error) : e->StartThread(error))) return nullptr;
  return e;
}

namespace {
// Caller's thread (in Open): the bytes behind an open device: a block device's size, or a regular
// file's (grown to sizeBytes when that is larger); false with `error` set when it cannot be had.
bool DeviceBytes(int fd, const EngineOptions& o, uint64_t* bytes, EngineError* error) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return Fail(error, errno, "open", "cannot stat " + o.path);
  if (S_ISBLK(st.st_mode)) {
    if (ioctl(fd, BLKGETSIZE64, bytes) != 0) return Fail(error, errno, "open", "cannot size block device " + o.path);
    return true;
  }
  if (!S_ISREG(st.st_mode)) return Fail(error, EINVAL, "open", o.path + " is neither a block device nor a regular file");
  const bool create = o.sizeBytes > 0;
  if (create && uint64_t(st.st_size) < o.sizeBytes) {
    const int rc = posix_fallocate(fd, 0, off_t(o.sizeBytes));
    if (rc != 0) return Fail(error, rc, "open", "cannot preallocate " + std::to_string(o.sizeBytes) + " bytes in " + o.path);
    *bytes = o.sizeBytes;
  } else {
    *bytes = uint64_t(st.st_size);
  }
  return true;
}
}  // namespace

// Caller's thread (in Open): opens the device or file with O_DIRECT (creating it when sizeBytes is set) and sets capacity_ in whole blocks.
bool Engine::OpenDevice(const EngineOptions& o, EngineError* error) {
  const bool create = o.sizeBytes > 0;
  fd_ = ::open(o.path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (fd_ < 0) return Fail(error, errno, "open", "cannot open " + o.path + " with O_DIRECT");
  uint64_t bytes = 0;
  if (!DeviceBytes(fd_, o, &bytes, error)) return false;
  capacity_ = bytes - bytes % kBlock;
  if (capacity_ == 0) return Fail(error, EINVAL, "open", o.path + " has no room (size it with sizeBytes)");
  return true;
}

// Caller's thread (in Open): sets up the io_uring ring (SQPOLL, or single-issuer with deferred task work where the kernel has it).
bool Engine::SetUpRing(const EngineOptions& o, EngineError* error) {
  io_uring_params params{};
  if (o.sqpoll) {
    params.flags |= IORING_SETUP_SQPOLL;
    params.sq_thread_idle = 50;  // ms before the kernel's poller sleeps
  } else {
    // Only the engine thread submits and reaps: completion work runs when it asks for events, not by
    // interrupting it (DEFER_TASKRUN). The ring starts disabled and the engine thread enables it, which
    // makes that thread its single issuer. Kernels before 6.1 refuse the flags: plain setup then.
    params.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  }
  int rc = io_uring_queue_init_params(o.queueDepth, &ring_, &params);
  if (rc == -EINVAL && !o.sqpoll) {
    params = io_uring_params{};
    rc = io_uring_queue_init_params(o.queueDepth, &ring_, &params);
  }
  if (rc < 0) return Fail(error, -rc, "open", "io_uring_queue_init");
  deferred_ = (params.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
  ringReady_ = true;
  return true;
}

// Caller's thread (in Open): allocates the request buffer pool and registers it with the ring when the kernel allows.
bool Engine::SetUpPool(const EngineOptions& o, EngineError* error) {
  pool_ = BufferPool::Create(o.poolBuffers ? o.poolBuffers : 2 * o.queueDepth, o.poolBufferBytes, o.largeCacheBytes);
  if (!pool_) return Fail(error, ENOMEM, "open", "cannot allocate the I/O buffer pool");
  // Fixed buffers spare the kernel pinning pages on every request; without them (memlock limits) plain I/O.
  iovec region{pool_->base(), pool_->totalBytes()};
  fixed_ = io_uring_register_buffers(&ring_, &region, 1) == 0;
  return true;
}

// Caller's thread (in Open): copies the limits, makes the scheduler and the request slots.
void Engine::Configure(const EngineOptions& o, Handler handler) {
  depth_ = o.queueDepth;
  sqpoll_ = o.sqpoll;
  submitQueueMax_ = o.submitQueueMax;
  spinUs_ = o.spinUs;
  handler_ = std::move(handler);
  scheduler_ = std::make_unique<Scheduler>(o.model, 0, 0, o.submitQueueMax);
  slots_.resize(o.queueDepth);
  for (unsigned i = o.queueDepth; i > 0; i--) freeSlots_.push_back(i - 1);
}

// Caller's thread (in Open): starts the engine thread, which enables a deferred ring and runs Loop; waits for the enabling.
bool Engine::StartThread(EngineError* error) {
  // (The thread holds the promise too: set_value may still touch it after Open has returned.)
  auto enabled = std::make_shared<std::promise<int>>();
  std::future<int> started = enabled->get_future();
  thread_ = std::thread([this, enabled] {
    int erc = 0;
    if (deferred_) erc = int(syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0)) < 0 ? errno : 0;
    enabled->set_value(erc);
    if (erc == 0) Loop();
  });
  if (const int erc = started.get(); erc != 0) {
    thread_.join();
    return Fail(error, erc, "open", "cannot enable the io_uring ring");
  }
  return true;
}

// Caller's thread (in Open), inline mode: enables a deferred ring from this thread (its single issuer
// from now on) and registers the eventfd the kernel signals when completions wait.
bool Engine::StartInline(EngineError* error) {
  inline_ = true;
  if (deferred_ && syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0) {
    return Fail(error, errno, "open", "cannot enable the io_uring ring");
  }
  eventFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (eventFd_ < 0) return Fail(error, errno, "open", "eventfd");
  if (const int rc = io_uring_register_eventfd(&ring_, eventFd_); rc < 0) return Fail(error, -rc, "open", "io_uring_register_eventfd");
  return true;
}

// Inline mode, the opening thread: see engine.h.
void Engine::Pump(bool reap) {
  POCKET_ASSERT(inline_, "Pump on an engine with a thread of its own");
  ready_.clear();
  size_t waiting = 0;
  bool closing = false;
  bool arrived = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    arrived = !incoming_.empty();
    TakeIncoming();
    closing = closing_;
    waiting = scheduler_->Queued();
    CheckAccounting(waiting);
  }
  SubmitReady();
  std::function<void()> onClosed;
  if (reap) {
    FailCancelled();
    cancelled_.clear();
    if (deferred_) GetEvents();
    Reap();
    Deliver();
    if (closing && !closedRun_ && inflight_ == 0 && !timerArmed_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (incoming_.empty()) {
        closedRun_ = true;
        onClosed = std::move(onClosed_);
      }
    }
  }
  // Tokens, not the device, hold the queue back: another pass soon (a timeout in the ring signals
  // eventFd), 20 µs after a pass that scheduled or took in something, twice as long after each that
  // did not, up to 1 ms: a queue that waits long for tokens (a large write on a slow model) costs few passes.
  if (arrived || !ready_.empty()) timerNs_ = kTimerMinNs;
  if (!closing && waiting > 0 && inflight_ == 0 && ready_.empty()) ArmTimer();
  if (onClosed) onClosed();
}

// Inline mode: a timeout of timerNs_ in the ring, at most one pending; none when the ring has no room (a completion will pump).
void Engine::ArmTimer() {
  if (timerArmed_) return;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return;
  timerSpec_ = __kernel_timespec{0, (long long)timerNs_};  // read when submitted, below
  io_uring_prep_timeout(sqe, &timerSpec_, 0, 0);
  io_uring_sqe_set_data64(sqe, kTimerTag);
  // Not taken now (it stays queued and goes in with the next submission): not counted as armed, so
  // Join never waits for it; its completion, whenever it comes, is one more pass.
  if (io_uring_submit(&ring_) < 1) return;
  timerArmed_ = true;
  timerNs_ = std::min<uint64_t>(timerNs_ * 2, kTimerMaxNs);
}

Engine::~Engine() {
  Close(nullptr);
  Join();
  if (eventFd_ >= 0) ::close(eventFd_);
  // Requests never handed to the ring (the thread did not run) still own their memory.
  for (const auto& r : incoming_) Drop(r);
  if (scheduler_) for (const auto& r : scheduler_->DrainAll()) Drop(r);
  if (ringReady_) io_uring_queue_exit(&ring_);
  if (fd_ >= 0) ::close(fd_);
}

int Engine::Submit(uint64_t id, uint32_t tenant, Op op, uint64_t offset, uint32_t length, void* buffer) {
  const Request r{id, tenant, op == Op::Write, offset, length, buffer, -1};
  int32_t rc = 0;
  SubmitBatch(&r, 1, &rc);
  return rc;
}

void Engine::SubmitBatch(const Request* requests, size_t n, int32_t* rcs) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t accepted = 0;
  for (size_t i = 0; i < n; i++) {
    const Request& r = requests[i];
    if (closing_) rcs[i] = -ESHUTDOWN;
    else if (!scheduler_->HasTenant(r.tenant)) rcs[i] = -ENOENT;
    else if (incoming_.size() + scheduler_->Queued() >= submitQueueMax_) rcs[i] = -EBUSY;
    else {
      incoming_.push_back(r);
      rcs[i] = 0;
      accepted++;
    }
  }
  POCKET_ASSERT(incoming_.size() + scheduler_->Queued() <= submitQueueMax_, "more requests waiting than the submit queue holds");
  accepted_ += accepted;
  if (accepted == 0) return;
  submitted_.fetch_add(accepted, std::memory_order_release);
  if (sleeping_) wake_.notify_one();  // a futex call only when the thread is asleep
}

void Engine::Drop(const Request& r) {
  pool_->Return(r.buffer, r.pool, r.length);
}

bool Engine::AddLatencyCritical(uint32_t tenant, const Slo& slo, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  return scheduler_->AddLatencyCritical(tenant, slo, why);
}

void Engine::AddBestEffort(uint32_t tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  scheduler_->AddBestEffort(tenant);
}

void Engine::RemoveTenant(uint32_t tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  // Its queued requests fail on the engine thread's next pass (they are moved to a cancel list there).
  for (Request r : scheduler_->RemoveTenant(tenant)) {
    r.tenant = UINT32_MAX;
    incoming_.push_back(r);
  }
  wake_.notify_one();
}

void Engine::SetMode(Mode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  scheduler_->SetMode(mode);
}

void Engine::Close(std::function<void()> onClosed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closing_) return;
  closing_ = true;
  onClosed_ = std::move(onClosed);
  submitted_.fetch_add(1, std::memory_order_release);
  wake_.notify_one();
}

void Engine::Join() {
  if (!inline_) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closing_) return;  // only after Close
  }
  // Inline: answers what is queued and waits out what is in flight (and a pending timer).
  while (!closedRun_) {
    if (inflight_ > 0 || timerArmed_) {
      io_uring_cqe* cqe = nullptr;
      io_uring_wait_cqe(&ring_, &cqe);
    }
    Pump(true);
  }
}

// Engine thread: runs deferred completion work, so finished requests show up in the completion queue.
void Engine::GetEvents() {
  syscall(__NR_io_uring_enter, ring_.ring_fd, 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
}

// Engine thread: the polling loop. Each pass takes new requests and schedules them, fails the
// cancelled ones, submits the ready ones, waits briefly for completions, reaps them and hands them out.
void Engine::Loop() {
  for (;;) {
    ready_.clear();
    cancelled_.clear();
    size_t waiting = 0;
    const Pass pass = StartPass(&waiting);
    if (pass == Pass::Closed) return;
    if (pass == Pass::Slept) continue;
    FailCancelled();
    SubmitReady();
    AwaitCompletions(waiting);
    Reap();
    Deliver();
  }
}

// Holding mu_, after TakeIncoming: every request slot is free or in the ring, and every accepted
// request is in exactly one place (`waiting`: those the scheduler still holds).
void Engine::CheckAccounting(size_t waiting) const {
  POCKET_ASSERT(inflight_ + freeSlots_.size() == depth_, "request slots lost or doubled");
  POCKET_ASSERT(accepted_ == completed_.load(std::memory_order_relaxed) + inflight_ + cancelled_.size() + ready_.size() + waiting,
                "an accepted request is neither answered, in the ring, ready, cancelled nor queued");
}

// Engine thread: a pass's start under mu_: takes the work, sets `*waiting` (requests left queued);
// Closed once closing has nothing left (onClosed has run), Slept after idling, else Work.
Engine::Pass Engine::StartPass(size_t* waiting) {
  std::unique_lock<std::mutex> lock(mu_);
  TakeIncoming();
  const bool closing = closing_;
  *waiting = scheduler_->Queued();
  CheckAccounting(*waiting);
  if (closing && inflight_ == 0 && cancelled_.empty() && ready_.empty()) {
    auto onClosed = std::move(onClosed_);
    lock.unlock();
    if (onClosed) onClosed();
    return Pass::Closed;
  }
  if (ready_.empty() && cancelled_.empty() && inflight_ == 0 && *waiting == 0 && !closing) {
    Idle(lock);
    return Pass::Slept;
  }
  return Pass::Work;
}

// Engine thread, holding mu_: moves new requests into the scheduler (a removed tenant's to cancelled_),
// then schedules up to the free ring slots into ready_, or, when closing, cancels everything queued.
void Engine::TakeIncoming() {
  for (const Request& r : incoming_) {
    // A removed tenant's request, or one whose tenant was removed meanwhile.
    if (r.tenant == UINT32_MAX || !scheduler_->Enqueue(r)) cancelled_.push_back(r);
  }
  incoming_.clear();
  if (closing_) {
    for (const auto& r : scheduler_->DrainAll()) cancelled_.push_back(r);
  } else {
    POCKET_ASSERT(inflight_ <= depth_, "more requests in the ring than the queue depth");
    scheduler_->Schedule(NowNs(), depth_ - inflight_, &ready_);
    POCKET_ASSERT(ready_.size() <= depth_ - inflight_, "the scheduler handed out more requests than free ring slots");
  }
}

// Engine thread, holding mu_ through `lock`: nothing to do: polls for a moment (a request usually
// follows the last completion), then sleeps until a request or Close arrives. Returns holding mu_.
void Engine::Idle(std::unique_lock<std::mutex>& lock) {
  const uint64_t seen = submitted_.load(std::memory_order_acquire);
  lock.unlock();
  const uint64_t until = NowNs() + uint64_t(spinUs_) * 1000;
  while (submitted_.load(std::memory_order_acquire) == seen && NowNs() < until) {
  }
  lock.lock();
  sleeping_ = true;
  wake_.wait(lock, [&] { return !incoming_.empty() || closing_; });
  sleeping_ = false;
}

// Engine thread: answers each cancelled request with -ECANCELED and gives its memory back.
void Engine::FailCancelled() {
  for (const auto& r : cancelled_) {
    Completion c;
    c.id = r.id;
    c.op = r.write ? Op::Write : Op::Read;
    c.result = -ECANCELED;
    Drop(r);
    done_.push_back(c);
  }
}

// Engine thread: puts the ready requests in the ring and submits them.
void Engine::SubmitReady() {
  const uint64_t now = NowNs();
  for (const auto& r : ready_) Prepare(r, now);
  if (!ready_.empty()) {
    const int rc = io_uring_submit(&ring_);
    (void)rc;  // errors come back per request as completions
    // Earlier requests' completions are posted too (a steady stream of submissions must not hold them
    // back). Inline, the pass that reaps asks for them itself, once.
    if (deferred_ && !inline_ && inflight_ > ready_.size()) GetEvents();
  }
}

// Engine thread: takes a free request slot for `r` and fills a submission queue entry (fixed-buffer I/O when its memory is a registered slot).
void Engine::Prepare(const Request& r, uint64_t nowNs) {
  POCKET_ASSERT(!freeSlots_.empty() && inflight_ < depth_, "more requests in flight than the queue depth");
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  POCKET_ASSERT(sqe != nullptr, "the submission queue is full with request slots free");
  const unsigned slot = freeSlots_.back();
  freeSlots_.pop_back();
  Slot& s = slots_[slot];
  POCKET_ASSERT(!s.busy, "a free request slot is in the ring");
  s.busy = true;
  s.request = r;
  s.submittedNs = nowNs;
  if (fixed_ && r.pool >= 0) {
    if (r.write) io_uring_prep_write_fixed(sqe, fd_, r.buffer, r.length, r.offset, 0);
    else io_uring_prep_read_fixed(sqe, fd_, r.buffer, r.length, r.offset, 0);
  } else if (r.write) {
    io_uring_prep_write(sqe, fd_, r.buffer, r.length, r.offset);
  } else {
    io_uring_prep_read(sqe, fd_, r.buffer, r.length, r.offset);
  }
  io_uring_sqe_set_data64(sqe, slot);
  inflight_++;
}

// Engine thread: when only I/O is pending, polls the completion queue for spinUs_, then waits on it
// (at most 200 µs, so new submissions are seen); when tokens alone hold requests back, sleeps 20 µs.
void Engine::AwaitCompletions(size_t waiting) {
  io_uring_cqe* cqe = nullptr;
  if (inflight_ > 0 && ready_.empty() && cancelled_.empty()) {
    const uint64_t seen = submitted_.load(std::memory_order_acquire);
    const uint64_t until = NowNs() + uint64_t(spinUs_) * 1000;
    while (io_uring_peek_cqe(&ring_, &cqe) != 0 && submitted_.load(std::memory_order_acquire) == seen && NowNs() < until) {
      if (deferred_) GetEvents();  // completions are posted only when asked for
    }
    if (cqe == nullptr && submitted_.load(std::memory_order_acquire) == seen) {
      __kernel_timespec ts{0, 200'000};  // 200 µs
      io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    }
  } else if (inflight_ == 0 && ready_.empty() && cancelled_.empty() && waiting > 0) {
    // Tokens, not the device, hold the queue back: wait a little for them to accrue.
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

// Engine thread: turns every posted completion queue entry into a completion in done_.
void Engine::Reap() {
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe = nullptr;
  const uint64_t reaped = NowNs();
  io_uring_for_each_cqe(&ring_, head, cqe) {
    seen++;
    if (io_uring_cqe_get_data64(cqe) == kTimerTag) {  // inline: the token wait is over
      timerArmed_ = false;
      continue;
    }
    done_.push_back(Complete(unsigned(io_uring_cqe_get_data64(cqe)), cqe->res, reaped));
  }
  if (seen) io_uring_cq_advance(&ring_, seen);
}

// Engine thread: frees the slot of a finished request and makes its completion (a read's memory goes with it to the receiver).
Completion Engine::Complete(unsigned slot, int32_t result, uint64_t reapedNs) {
  POCKET_ASSERT(slot < slots_.size(), "a completion for a request slot that does not exist");
  Slot& s = slots_[slot];
  POCKET_ASSERT(s.busy && inflight_ > 0, "a completion for a request slot not in the ring");
  Completion c;
  c.id = s.request.id;
  c.op = s.request.write ? Op::Write : Op::Read;
  c.result = result;
  c.length = s.request.length;
  c.latencyNs = reapedNs - s.submittedNs;
  if (!s.request.write && result >= 0) {
    c.buffer = s.request.buffer;  // handed to the receiver
    c.pool = s.request.pool;
  } else {
    Drop(s.request);
  }
  s.busy = false;
  freeSlots_.push_back(slot);
  inflight_--;
  return c;
}

// Engine thread: hands the pass's completions to the handler.
void Engine::Deliver() {
  if (done_.empty()) return;
  POCKET_ASSERT(done_.size() <= completionBatchMax(), "a pass answered more requests than the queue and the ring hold");
  completed_ += done_.size();
  handler_(std::move(done_));
  done_.clear();
}

}  // namespace pocket
