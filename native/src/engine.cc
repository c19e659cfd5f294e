#include "engine.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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
      largeCached_ -= size_t(1) << c;
      return p;
    }
  }
  return AllocateAligned(size_t(1) << c);
}

void BufferPool::GiveLarge(void* p, size_t bytes) {
  if (p == nullptr) return;
  const int c = LargeClass(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (largeCached_ + (size_t(1) << c) <= largeMax_) {
      large_[c].push_back(p);
      largeCached_ += size_t(1) << c;
      return;
    }
  }
  std::free(p);
}

void BufferPool::Return(void* buffer, int32_t pool, size_t bytes) {
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
  return slot;
}

void BufferPool::Release(int32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(slot);
}

std::unique_ptr<Engine> Engine::Open(const EngineOptions& o, Handler handler, EngineError* error) {
  std::unique_ptr<Engine> e(new Engine());
  if (o.queueDepth == 0 || o.queueDepth > 4096) {
    Fail(error, EINVAL, "open", "queue depth must be 1..4096");
    return nullptr;
  }
  const bool create = o.sizeBytes > 0;
  e->fd_ = ::open(o.path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
  if (e->fd_ < 0) {
    Fail(error, errno, "open", "cannot open " + o.path + " with O_DIRECT");
    return nullptr;
  }
  struct stat st {};
  if (fstat(e->fd_, &st) != 0) {
    Fail(error, errno, "open", "cannot stat " + o.path);
    return nullptr;
  }
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(e->fd_, BLKGETSIZE64, &bytes) != 0) {
      Fail(error, errno, "open", "cannot size block device " + o.path);
      return nullptr;
    }
    e->capacity_ = bytes;
  } else if (S_ISREG(st.st_mode)) {
    if (create && uint64_t(st.st_size) < o.sizeBytes) {
      const int rc = posix_fallocate(e->fd_, 0, off_t(o.sizeBytes));
      if (rc != 0) {
        Fail(error, rc, "open", "cannot preallocate " + std::to_string(o.sizeBytes) + " bytes in " + o.path);
        return nullptr;
      }
      e->capacity_ = o.sizeBytes;
    } else {
      e->capacity_ = uint64_t(st.st_size);
    }
  } else {
    Fail(error, EINVAL, "open", o.path + " is neither a block device nor a regular file");
    return nullptr;
  }
  e->capacity_ -= e->capacity_ % kBlock;
  if (e->capacity_ == 0) {
    Fail(error, EINVAL, "open", o.path + " has no room (size it with sizeBytes)");
    return nullptr;
  }
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
  int rc = io_uring_queue_init_params(o.queueDepth, &e->ring_, &params);
  if (rc == -EINVAL && !o.sqpoll) {
    params = io_uring_params{};
    rc = io_uring_queue_init_params(o.queueDepth, &e->ring_, &params);
  }
  if (rc < 0) {
    Fail(error, -rc, "open", "io_uring_queue_init");
    return nullptr;
  }
  e->deferred_ = (params.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
  e->ringReady_ = true;
  e->pool_ = BufferPool::Create(o.poolBuffers ? o.poolBuffers : 2 * o.queueDepth, o.poolBufferBytes, o.largeCacheBytes);
  if (!e->pool_) {
    Fail(error, ENOMEM, "open", "cannot allocate the I/O buffer pool");
    return nullptr;
  }
  // Fixed buffers spare the kernel pinning pages on every request; without them (memlock limits) plain I/O.
  iovec region{e->pool_->base(), e->pool_->totalBytes()};
  e->fixed_ = io_uring_register_buffers(&e->ring_, &region, 1) == 0;
  e->depth_ = o.queueDepth;
  e->sqpoll_ = o.sqpoll;
  e->submitQueueMax_ = o.submitQueueMax;
  e->spinUs_ = o.spinUs;
  e->handler_ = std::move(handler);
  e->scheduler_ = std::make_unique<Scheduler>(o.model, 0, 0, o.submitQueueMax);
  e->slots_.resize(o.queueDepth);
  for (unsigned i = o.queueDepth; i > 0; i--) e->freeSlots_.push_back(i - 1);
  // The thread enables a deferred ring before its loop; Open waits for that to be done.
  // (The thread holds the promise too: set_value may still touch it after Open has returned.)
  auto enabled = std::make_shared<std::promise<int>>();
  std::future<int> started = enabled->get_future();
  e->thread_ = std::thread([raw = e.get(), enabled] {
    int erc = 0;
    if (raw->deferred_) erc = int(syscall(__NR_io_uring_register, raw->ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0)) < 0 ? errno : 0;
    enabled->set_value(erc);
    if (erc == 0) raw->Loop();
  });
  if (const int erc = started.get(); erc != 0) {
    e->thread_.join();
    Fail(error, erc, "open", "cannot enable the io_uring ring");
    return nullptr;
  }
  return e;
}

Engine::~Engine() {
  Close(nullptr);
  Join();
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
  if (thread_.joinable()) thread_.join();
}

// Engine thread: runs deferred completion work, so finished requests show up in the completion queue.
void Engine::GetEvents() {
  syscall(__NR_io_uring_enter, ring_.ring_fd, 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
}

// Runs on the engine thread: the polling loop.
void Engine::Loop() {
  std::vector<Request> ready;
  std::vector<Completion> done;
  std::vector<Request> cancelled;
  unsigned inflight = 0;
  for (;;) {
    ready.clear();
    cancelled.clear();
    bool closing;
    size_t waiting;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (const Request& r : incoming_) {
        // A removed tenant's request, or one whose tenant was removed meanwhile.
        if (r.tenant == UINT32_MAX || !scheduler_->Enqueue(r)) cancelled.push_back(r);
      }
      incoming_.clear();
      closing = closing_;
      if (closing) {
        for (const auto& r : scheduler_->DrainAll()) cancelled.push_back(r);
      } else {
        scheduler_->Schedule(NowNs(), depth_ - inflight, &ready);
      }
      waiting = scheduler_->Queued();
      if (closing && inflight == 0 && cancelled.empty() && ready.empty()) {
        auto onClosed = std::move(onClosed_);
        lock.unlock();
        if (onClosed) onClosed();
        return;
      }
      if (ready.empty() && cancelled.empty() && inflight == 0 && waiting == 0 && !closing) {
        // Idle: poll for a moment (a request usually follows the last completion), then sleep.
        const uint64_t seen = submitted_.load(std::memory_order_acquire);
        lock.unlock();
        const uint64_t until = NowNs() + uint64_t(spinUs_) * 1000;
        while (submitted_.load(std::memory_order_acquire) == seen && NowNs() < until) {
        }
        lock.lock();
        sleeping_ = true;
        wake_.wait(lock, [&] { return !incoming_.empty() || closing_; });
        sleeping_ = false;
        continue;
      }
    }
    for (const auto& r : cancelled) {
      Completion c;
      c.id = r.id;
      c.op = r.write ? Op::Write : Op::Read;
      c.result = -ECANCELED;
      Drop(r);
      done.push_back(c);
    }
    const uint64_t now = NowNs();
    for (const auto& r : ready) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      const unsigned slot = freeSlots_.back();
      freeSlots_.pop_back();
      Slot& s = slots_[slot];
      s.request = r;
      s.submittedNs = now;
      if (fixed_ && r.pool >= 0) {
        if (r.write) io_uring_prep_write_fixed(sqe, fd_, r.buffer, r.length, r.offset, 0);
        else io_uring_prep_read_fixed(sqe, fd_, r.buffer, r.length, r.offset, 0);
      } else if (r.write) {
        io_uring_prep_write(sqe, fd_, r.buffer, r.length, r.offset);
      } else {
        io_uring_prep_read(sqe, fd_, r.buffer, r.length, r.offset);
      }
      io_uring_sqe_set_data64(sqe, slot);
      inflight++;
    }
    if (!ready.empty()) {
      const int rc = io_uring_submit(&ring_);
      (void)rc;  // errors come back per request as completions
      // Earlier requests' completions are posted too (a steady stream of submissions must not hold them back).
      if (deferred_ && inflight > ready.size()) GetEvents();
    }
    // Reap: poll what is there; wait briefly when I/O is in flight and nothing else is to do.
    io_uring_cqe* cqe = nullptr;
    if (inflight > 0 && ready.empty() && cancelled.empty()) {
      // Poll the completion queue for a moment, then block on it (bounded, so new submissions are seen).
      const uint64_t seen = submitted_.load(std::memory_order_acquire);
      const uint64_t until = NowNs() + uint64_t(spinUs_) * 1000;
      while (io_uring_peek_cqe(&ring_, &cqe) != 0 && submitted_.load(std::memory_order_acquire) == seen && NowNs() < until) {
        if (deferred_) GetEvents();  // completions are posted only when asked for
      }
      if (cqe == nullptr && submitted_.load(std::memory_order_acquire) == seen) {
        __kernel_timespec ts{0, 200'000};  // 200 µs
        io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
      }
    } else if (inflight == 0 && ready.empty() && cancelled.empty() && waiting > 0) {
      // Tokens, not the device, hold the queue back: wait a little for them to accrue.
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    unsigned head;
    unsigned seen = 0;
    const uint64_t reaped = NowNs();
    io_uring_for_each_cqe(&ring_, head, cqe) {
      const unsigned slot = unsigned(io_uring_cqe_get_data64(cqe));
      Slot& s = slots_[slot];
      Completion c;
      c.id = s.request.id;
      c.op = s.request.write ? Op::Write : Op::Read;
      c.result = cqe->res;
      c.length = s.request.length;
      c.latencyNs = reaped - s.submittedNs;
      if (!s.request.write && cqe->res >= 0) {
        c.buffer = s.request.buffer;  // handed to the receiver
        c.pool = s.request.pool;
      } else {
        Drop(s.request);
      }
      freeSlots_.push_back(slot);
      inflight--;
      seen++;
      done.push_back(c);
    }
    if (seen) io_uring_cq_advance(&ring_, seen);
    if (!done.empty()) {
      completed_ += done.size();
      handler_(std::move(done));
      done.clear();
    }
  }
}

}  // namespace pocket
