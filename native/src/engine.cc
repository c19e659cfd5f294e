#include "engine.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

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
  }
  const int rc = io_uring_queue_init_params(o.queueDepth, &e->ring_, &params);
  if (rc < 0) {
    Fail(error, -rc, "open", "io_uring_queue_init");
    return nullptr;
  }
  e->ringReady_ = true;
  e->depth_ = o.queueDepth;
  e->sqpoll_ = o.sqpoll;
  e->submitQueueMax_ = o.submitQueueMax;
  e->spinUs_ = o.spinUs;
  e->handler_ = std::move(handler);
  e->scheduler_ = std::make_unique<Scheduler>(o.model, 0, 0, o.submitQueueMax);
  e->slots_.resize(o.queueDepth);
  for (unsigned i = o.queueDepth; i > 0; i--) e->freeSlots_.push_back(i - 1);
  e->thread_ = std::thread([raw = e.get()] { raw->Loop(); });
  return e;
}

Engine::~Engine() {
  Close(nullptr);
  Join();
  // Requests never handed to the ring (the thread did not run) still own their buffers.
  for (auto& [id, buf] : buffers_) std::free(buf);
  if (ringReady_) io_uring_queue_exit(&ring_);
  if (fd_ >= 0) ::close(fd_);
}

int Engine::Submit(uint64_t id, uint32_t tenant, Op op, uint64_t offset, uint32_t length, void* buffer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closing_) return -ESHUTDOWN;
  if (!scheduler_->HasTenant(tenant)) return -ENOENT;
  if (incoming_.size() + scheduler_->Queued() >= submitQueueMax_) return -EBUSY;
  incoming_.push_back({Request{id, tenant, op == Op::Write, offset, length}, buffer});
  submitted_.fetch_add(1, std::memory_order_release);
  if (sleeping_) wake_.notify_one();  // a futex call only when the thread is asleep
  return 0;
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
  for (const auto& r : scheduler_->RemoveTenant(tenant)) incoming_.push_back({Request{r.id, UINT32_MAX, r.write, r.offset, r.length}, nullptr});
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
      while (!incoming_.empty()) {
        auto [r, buf] = incoming_.front();
        incoming_.pop_front();
        if (r.tenant == UINT32_MAX) {  // a removed tenant's request
          cancelled.push_back(r);
          continue;
        }
        buffers_[r.id] = buf;
        if (!scheduler_->Enqueue(r)) cancelled.push_back(r);  // its tenant was removed meanwhile
      }
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
      auto it = buffers_.find(r.id);
      if (it != buffers_.end()) {
        std::free(it->second);
        buffers_.erase(it);
      }
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
      s.busy = true;
      auto it = buffers_.find(r.id);
      s.buffer = it->second;
      buffers_.erase(it);
      if (r.write) io_uring_prep_write(sqe, fd_, s.buffer, r.length, r.offset);
      else io_uring_prep_read(sqe, fd_, s.buffer, r.length, r.offset);
      io_uring_sqe_set_data64(sqe, slot);
      inflight++;
    }
    if (!ready.empty()) {
      const int rc = io_uring_submit(&ring_);
      (void)rc;  // errors come back per request as completions
    }
    // Reap: poll what is there; wait briefly when I/O is in flight and nothing else is to do.
    io_uring_cqe* cqe = nullptr;
    if (inflight > 0 && ready.empty() && cancelled.empty()) {
      // Poll the completion queue for a moment, then block on it (bounded, so new submissions are seen).
      const uint64_t seen = submitted_.load(std::memory_order_acquire);
      const uint64_t until = NowNs() + uint64_t(spinUs_) * 1000;
      while (io_uring_peek_cqe(&ring_, &cqe) != 0 && submitted_.load(std::memory_order_acquire) == seen && NowNs() < until) {
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
        c.buffer = s.buffer;  // handed to the receiver
      } else {
        std::free(s.buffer);
      }
      s.buffer = nullptr;
      s.busy = false;
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
