// The NVMe engine: one instance owns one device (a block device or a
// preallocated file opened with O_DIRECT) and runs the loop: take submitted
// requests from a bounded queue, schedule them (QoS), submit them to
// io_uring, reap completions and hand them out in batches. The loop runs on
// a thread of its own, or inline (EngineOptions::inlineMode) on the thread
// that opened the engine, which calls Pump when the ring's eventfd is
// readable. No Node-API here: the addon wraps it (addon.cc), and the C++
// tests drive it directly.
#pragma once

#include <liburing.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "assert.h"
#include "scheduler.h"

namespace pocket {

constexpr uint32_t kBlock = 4096;

struct EngineOptions {
  std::string path;
  // Bytes to preallocate when `path` is a regular file (0: use its size). Ignored for block devices.
  uint64_t sizeBytes = 0;
  unsigned queueDepth = 128;
  bool sqpoll = false;
  size_t submitQueueMax = 8192;
  // Microseconds the engine thread busy-polls for new requests or completions before it sleeps
  // (lower latency on a device that answers in microseconds, at the cost of a core while it spins;
  // on a VM whose disk the host emulates it takes the host's CPU from the I/O: see native/index.ts).
  unsigned spinUs = 0;
  // Registered I/O buffers (io_uring fixed buffers): requests up to `poolBufferBytes` take one
  // instead of an allocation of their own. 0 buffers: 2 × queueDepth.
  uint32_t poolBuffers = 0;
  uint32_t poolBufferBytes = 64 * 1024;
  // Larger requests' memory is kept for reuse up to this many bytes (by power-of-two size class):
  // fresh allocations this big are mmapped, so each would cost page faults, zeroing and an unmap.
  size_t largeCacheBytes = 64 << 20;
  DeviceModel model;
  // No engine thread: the thread that opens the engine submits and reaps itself, through Pump, when
  // its eventFd() is readable, and after it submits (see Pump). For an event loop that would
  // otherwise hand every batch to the engine thread and back: two wake-ups per round trip.
  bool inlineMode = false;
};

// Where a request's memory came from (Request::pool / Completion::pool): a slot index >= 0, or one of these.
constexpr int32_t kOwnMemory = -1;     // AllocateAligned: std::free
constexpr int32_t kCachedMemory = -2;  // BufferPool::TakeLarge: BufferPool::GiveLarge

// The engine's request memory: fixed-size aligned buffers in one region (registered with io_uring
// when the kernel allows), and a bounded cache of larger aligned blocks by power-of-two size.
// Any thread: a short lock per call. Shared: the addon exposes the region to JS, and JS Buffers
// over large reads give their memory back here, both of which may outlive the engine.
class BufferPool {
 public:
  // nullptr when the memory cannot be had.
  static std::shared_ptr<BufferPool> Create(uint32_t count, uint32_t bytes, size_t largeCacheBytes = 0);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A free slot, or -1 when all are taken (the caller allocates instead).
  int32_t Acquire();
  // A slot from Acquire back (exactly once).
  void Release(int32_t slot);
  void* At(int32_t slot) const {
    POCKET_ASSERT(slot >= 0 && uint32_t(slot) < count_, "a pool slot outside the pool");
    return static_cast<char*>(base_) + size_t(slot) * bytes_;
  }
  // At least `bytes` of aligned memory (up to 16 MiB), reused when the cache has a block of its class; nullptr when out of memory.
  void* TakeLarge(size_t bytes);
  // A block from TakeLarge(bytes) back: cached while under the bound, else freed.
  void GiveLarge(void* p, size_t bytes);
  // Gives back a request's memory, whatever its kind (`pool`: a slot, kOwnMemory or kCachedMemory).
  void Return(void* buffer, int32_t pool, size_t bytes);
  size_t cachedBytes();
  void* base() const { return base_; }
  uint32_t count() const { return count_; }
  uint32_t bufferBytes() const { return bytes_; }
  size_t totalBytes() const { return size_t(count_) * bytes_; }

 private:
  BufferPool() = default;
  void* base_ = nullptr;
  uint32_t count_ = 0;
  uint32_t bytes_ = 0;
  std::mutex mu_;
  std::vector<int32_t> free_;  // guarded by mu_
  std::vector<uint8_t> taken_;  // guarded by mu_: 1 while a slot is handed out (a second Release is a bug)
  static constexpr int kLargeClasses = 25;  // 2^0 .. 2^24 bytes
  std::vector<void*> large_[kLargeClasses];  // guarded by mu_
  size_t largeCached_ = 0;  // guarded by mu_
  size_t largeMax_ = 0;
};

enum class Op : uint8_t { Read = 0, Write = 1 };

struct Completion {
  uint64_t id = 0;
  Op op = Op::Read;
  int32_t result = 0;  // bytes transferred, or -errno
  void* buffer = nullptr;  // a read's bytes (aligned; the receiver gives it back with BufferPool::Return)
  int32_t pool = kOwnMemory;  // where those bytes live: a pool slot, kOwnMemory or kCachedMemory
  uint32_t length = 0;
  uint64_t latencyNs = 0;  // submission to completion
};

struct EngineError {
  int errnum = 0;
  std::string op;
  std::string message;
};

class Engine {
 public:
  using Handler = std::function<void(std::vector<Completion>&&)>;

  // Opens the device and starts the thread. `handler` runs on the engine thread.
  static std::unique_ptr<Engine> Open(const EngineOptions& options, Handler handler, EngineError* error);
  ~Engine();

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Any thread. `buffer` is 4 KiB-aligned, `length` bytes (a multiple of 4 KiB), owned by the engine
  // from here on (freed after a write completes; handed back with a read's completion).
  // Returns 0, -EBUSY (queue full), -ESHUTDOWN (closing), -ENOENT (unknown tenant).
  int Submit(uint64_t id, uint32_t tenant, Op op, uint64_t offset, uint32_t length, void* buffer);
  // Any thread: many requests under one lock. Each request's memory is `buffer` (a pool slot when
  // `pool` >= 0); `rcs[i]` gets what Submit would return, and a refused request's memory stays the caller's.
  void SubmitBatch(const Request* requests, size_t n, int32_t* rcs);
  // The registered buffers (requests may use them: set `pool` to the slot).
  const std::shared_ptr<BufferPool>& pool() const { return pool_; }
  bool fixedBuffers() const { return fixed_; }

  // Tenants (any thread).
  bool AddLatencyCritical(uint32_t tenant, const Slo& slo, std::string* why);
  void AddBestEffort(uint32_t tenant);
  void RemoveTenant(uint32_t tenant);
  void SetMode(Mode mode);

  // Stops taking requests; queued ones fail with -ECANCELED, in-flight ones complete;
  // then `onClosed` runs on the engine thread and the thread ends. Idempotent.
  // Inline: `onClosed` runs in the Pump that finds nothing left in flight.
  void Close(std::function<void()> onClosed);
  // Waits for the thread to end (after Close). Inline: waits for what is in flight (blocking) and
  // answers it, so no request's memory is in the kernel's hands afterwards.
  void Join();

  // Inline mode only, on the opening thread. One pass without waiting: new requests scheduled and
  // submitted; with `reap`, finished ones reaped and handed to the handler (on this thread), and a
  // cancelled or closing engine moved along. Readable eventFd() means a Pump(true) has work.
  void Pump(bool reap);
  // Inline mode: an eventfd the kernel signals when completions wait (read it to reset it); else -1.
  int eventFd() const { return eventFd_; }
  bool inlineMode() const { return inline_; }

  uint64_t capacityBytes() const { return capacity_; }
  unsigned queueDepth() const { return depth_; }
  bool sqpoll() const { return sqpoll_; }
  uint64_t completed() const { return completed_.load(); }
  // The most completions one handler call carries: a queue's worth cancelled plus a ring's worth reaped.
  size_t completionBatchMax() const { return size_t(depth_) + submitQueueMax_; }

 private:
  Engine() = default;

  // Open's steps (caller's thread, before the engine thread exists); each false with `error` set when it fails.
  bool OpenDevice(const EngineOptions& o, EngineError* error);
  bool SetUpRing(const EngineOptions& o, EngineError* error);
  bool SetUpPool(const EngineOptions& o, EngineError* error);
  void Configure(const EngineOptions& o, Handler handler);
  bool StartThread(EngineError* error);
  bool StartInline(EngineError* error);
  static constexpr uint64_t kTimerTag = UINT64_MAX;  // inline: the user data of the ring's timeout

  // The engine thread's loop and the steps of one pass.
  void Loop();
  enum class Pass { Work, Slept, Closed };
  Pass StartPass(size_t* waiting);
  void CheckAccounting(size_t waiting) const;
  void TakeIncoming();
  void Idle(std::unique_lock<std::mutex>& lock);
  void FailCancelled();
  void SubmitReady();
  void Prepare(const Request& r, uint64_t nowNs);
  void AwaitCompletions(size_t waiting);
  void Reap();
  Completion Complete(unsigned slot, int32_t result, uint64_t reapedNs);
  void Deliver();

  struct Slot {
    Request request;
    uint64_t submittedNs = 0;
    bool busy = false;  // in the ring: taken by Prepare, given back by Complete
  };
  // Engine thread: gives a request's memory back.
  void Drop(const Request& r);

  int fd_ = -1;
  int eventFd_ = -1;
  bool inline_ = false;
  bool timerArmed_ = false;  // inline: a ring timeout is pending (tokens hold requests back)
  static constexpr uint64_t kTimerMinNs = 20'000;
  static constexpr uint64_t kTimerMaxNs = 1'000'000;
  uint64_t timerNs_ = kTimerMinNs;  // inline: the next timeout (see Pump)
  __kernel_timespec timerSpec_{};
  bool closedRun_ = false;   // inline: onClosed has run
  void ArmTimer();
  io_uring ring_{};
  bool ringReady_ = false;
  bool deferred_ = false;  // DEFER_TASKRUN: completions need GetEvents (or a wait) to appear
  void GetEvents();
  unsigned depth_ = 0;
  bool sqpoll_ = false;
  uint64_t capacity_ = 0;
  size_t submitQueueMax_ = 0;
  Handler handler_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::unique_ptr<Scheduler> scheduler_;  // guarded by mu_
  std::deque<Request> incoming_;  // guarded by mu_
  std::shared_ptr<BufferPool> pool_;
  bool fixed_ = false;  // the pool is registered with the ring
  bool closing_ = false;  // guarded by mu_
  bool sleeping_ = false;  // guarded by mu_: the engine thread waits on wake_ (only then is a notify needed)
  std::atomic<uint64_t> submitted_{0};  // bumped by Submit and Close: what the spinning thread watches
  uint64_t accepted_ = 0;  // guarded by mu_: requests Submit/SubmitBatch took, ever (each gets exactly one completion)
  unsigned spinUs_ = 0;
  std::function<void()> onClosed_;  // guarded by mu_

  std::vector<Slot> slots_;  // engine thread only
  std::vector<unsigned> freeSlots_;
  // Engine thread only: one pass's work, and the requests in the ring.
  std::vector<Request> ready_;      // scheduled this pass, to submit
  std::vector<Request> cancelled_;  // to fail with ECANCELED this pass
  std::vector<Completion> done_;    // for the handler at the end of the pass
  unsigned inflight_ = 0;
  std::atomic<uint64_t> completed_{0};
  std::thread thread_;
};

// An aligned buffer for the engine (std::free releases it); nullptr when out of memory.
void* AllocateAligned(size_t bytes);

}  // namespace pocket
