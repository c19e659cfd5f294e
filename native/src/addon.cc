// Node-API glue for the NVMe engine. Every function here runs on the JS
// thread except the engine's completion handler and close hook, which only
// hand batches to a ThreadSafeFunction (the one Node-API object that may be
// touched from another thread).
#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <unistd.h>
#include <vector>

#include "crc32.h"
#include "engine.h"

namespace {

using pocket::BufferPool;
using pocket::Completion;
using pocket::Engine;
using pocket::Request;

// Completions waiting for JS. The engine thread appends and asks for one call when none is
// pending; that call takes everything there is. So a busy JS thread gets large batches, and a
// burst costs one wake-up, not one per completion. Bounded: past `max` the engine thread waits
// (backpressure on the device loop), so it holds fewer than `max` plus one batch.
struct Mailbox {
  std::mutex mu;
  std::condition_variable room;
  std::vector<Completion> items;  // guarded by mu
  bool callPending = false;       // guarded by mu
  bool dropping = false;          // guarded by mu: nobody will take completions (the engine is being destroyed)
  size_t max = 65536;
  size_t batchMax = 0;               // the engine's largest batch; set before the first request
  std::shared_ptr<BufferPool> pool;  // set before the first request
  // Set with `items` non-empty, cleared when they are taken: what the JS thread's poll watches without the lock.
  std::atomic<bool> ready{false};
  // JS thread only: requests the engine accepted and JS has not yet been handed the completion of.
  size_t outstanding = 0;
  // JS thread only: see StartPolling.
  uv_prepare_t* prepare = nullptr;
  uint64_t spinNs = 0;
  bool inlineMode = false;  // the engine runs on the JS thread (set before the first request)
  bool direct = false;      // inline: a pass from the eventfd's callback is running (DeliverInline follows)
  ~Mailbox();
};

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// JS thread, right before the event loop would block for I/O: while requests are out and nothing else
// is due, waits up to spinNs for completions to reach the mailbox. The drain call is then already
// signalled, so the loop's poll returns at once instead of sleeping until the engine thread's wake-up
// reaches it (where the device answers in microseconds that wake-up costs more than the device: reads
// the device need not fetch ran at 0.4x fio without it, 0.9-1.0x with it). Bounded: never longer than
// spinNs per loop turn, and only while the loop has nothing else to run. Off when spinNs is 0 (the default).
void PollMailbox(uv_prepare_t* handle) {
  auto* box = static_cast<Mailbox*>(handle->data);
  if (box->outstanding == 0 || box->ready.load(std::memory_order_acquire) || uv_backend_timeout(handle->loop) == 0) return;
  const uint64_t until = MonotonicNs() + box->spinNs;
  while (!box->ready.load(std::memory_order_acquire) && MonotonicNs() < until) {
  }
}

// JS thread: starts the mailbox poll on this thread's loop (none when spinNs is 0). Unreferenced: it keeps no loop alive.
void StartPolling(Napi::Env env, Mailbox* box) {
  uv_loop_t* loop = nullptr;
  if (box->spinNs == 0 || napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
  auto* handle = new uv_prepare_t();
  uv_prepare_init(loop, handle);
  handle->data = box;
  uv_prepare_start(handle, PollMailbox);
  uv_unref(reinterpret_cast<uv_handle_t*>(handle));
  box->prepare = handle;
}

// JS thread: stops the poll (before the mailbox can go away); idempotent.
void StopPolling(Mailbox* box) {
  if (box->prepare == nullptr) return;
  uv_prepare_stop(box->prepare);
  uv_close(reinterpret_cast<uv_handle_t*>(box->prepare), [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
  box->prepare = nullptr;
}

// Gives completions' read memory back (pool slots and own allocations).
void Release(Mailbox* box, std::vector<Completion>* batch) {
  for (auto& c : *batch) {
    box->pool->Return(c.buffer, c.pool, c.length);
    c.buffer = nullptr;
    c.pool = -1;
  }
}

// Completions never taken (the environment went away) give their read memory back with the mailbox.
Mailbox::~Mailbox() {
  if (pool) Release(this, &items);
}

// What a zero-copy Buffer's finalizer needs to give its memory back.
struct Held {
  std::shared_ptr<BufferPool> pool;
  int32_t kind;
  uint32_t length;
};

// Data of a call: what to do.
enum class Call { Drain, Closed };
Call kDrain = Call::Drain;
Call kClosed = Call::Closed;

// JS thread: takes what the mailbox holds and calls the JS callback with it as
// { records: Float64Array [id, result, latencyNs, at] × n, data?: ArrayBuffer, buffers?: Array }.
// Reads held in pool slots are copied into one ArrayBuffer for the whole call (`data`; `at` is the
// read's offset in it) and the slots released at once; a larger read's block becomes its own
// Buffer (`buffers[i]`, no copy; `at` is -1).
void Drain(Napi::Env env, Napi::Function callback, Mailbox* box, Call* call) {
  if (call == &kClosed) {
    StopPolling(box);
    if (env != nullptr) callback.Call({env.Null()});
    return;
  }
  std::vector<Completion> batch;
  {
    std::lock_guard<std::mutex> lock(box->mu);
    batch.swap(box->items);
    box->callPending = false;
    box->ready.store(false, std::memory_order_relaxed);
  }
  box->outstanding -= std::min(box->outstanding, batch.size());
  box->room.notify_all();
  struct Guard {  // releases the read memory not handed over, also when something throws
    Mailbox* box;
    std::vector<Completion>* batch;
    ~Guard() { Release(box, batch); }
  } guard{box, &batch};
  if (env == nullptr || batch.empty()) return;  // the environment is going away: the guard releases
  const size_t n = batch.size();
  size_t pooled = 0;
  for (const auto& c : batch) if (c.buffer != nullptr && c.pool >= 0 && c.result > 0) pooled += size_t(c.result);
  // A plain ArrayBuffer (JS makes the Buffer views: node::Buffer objects made here cost a prototype change each).
  Napi::ArrayBuffer data;
  uint8_t* bytes = nullptr;
  if (pooled > 0) {
    // Uninitialized (every byte is copied over below); freed when the last view of it is collected.
    // Without that memory, V8's own (zero-filled) allocation: the batch is delivered either way.
    bytes = static_cast<uint8_t*>(std::malloc(pooled));
    data = bytes != nullptr ? Napi::ArrayBuffer::New(env, bytes, pooled, [](Napi::Env, void* p) { std::free(p); })
                            : Napi::ArrayBuffer::New(env, pooled);
    bytes = static_cast<uint8_t*>(data.Data());
  }
  auto records = Napi::Float64Array::New(env, 4 * n);
  double* r = records.Data();
  Napi::Array buffers;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    Completion& c = batch[i];
    r[4 * i] = double(c.id);
    r[4 * i + 1] = double(c.result);
    r[4 * i + 2] = double(c.latencyNs);
    r[4 * i + 3] = -1;
    if (c.buffer == nullptr || c.result < 0) continue;
    if (c.pool >= 0) {
      POCKET_ASSERT(uint32_t(c.result) <= c.length && at + size_t(c.result) <= pooled, "a read's bytes overrun its buffer or the batch's copy");
      std::memcpy(bytes + at, c.buffer, size_t(c.result));
      r[4 * i + 3] = double(at);
      at += size_t(c.result);
      box->pool->Release(c.pool);
      c.buffer = nullptr;
      c.pool = pocket::kOwnMemory;
    } else {
      if (buffers.IsEmpty()) buffers = Napi::Array::New(env, n);
      // Zero copy: the aligned read memory becomes the Buffer's; its finalizer (JS thread) gives it back.
      auto* back = new Held{box->pool, c.pool, c.length};
      buffers.Set(uint32_t(i), Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(c.buffer), size_t(c.result),
                                                          [](Napi::Env, uint8_t* p, Held* h) {
                                                            h->pool->Return(p, h->kind, h->length);
                                                            delete h;
                                                          }, back));
      c.buffer = nullptr;
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("records", records);
  if (pooled > 0) out.Set("data", data);
  if (!buffers.IsEmpty()) out.Set("buffers", buffers);
  callback.Call({out});
}

// JS thread: a thread-safe call. What the callback throws (or a failure to make its argument) goes on
// as the JS exception it was, an uncaught exception for Node to report; while the environment is
// torn down (a worker thread ending) nothing can run and that is not an error. Never a C++ exception
// out of here: there is no JS frame to take it, and the process would abort.
void CallJs(Napi::Env env, Napi::Function callback, Mailbox* box, Call* call) {
  // A call left queued when the environment went away comes after the finalizer has deleted the
  // mailbox: nothing to do (what it held was released with it).
  if (env == nullptr) return;
  try {
    Drain(env, callback, box, call);
  } catch (const Napi::Error& e) {
    napi_throw(env, e.Value());  // refused only while terminating, when nothing can be reported
  }
}

using Tsfn = Napi::TypedThreadSafeFunction<Mailbox, Call, CallJs>;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Engine", {
      InstanceMethod("submit", &EngineWrap::Submit),
      InstanceMethod("addLatencyCritical", &EngineWrap::AddLatencyCritical),
      InstanceMethod("addBestEffort", &EngineWrap::AddBestEffort),
      InstanceMethod("removeTenant", &EngineWrap::RemoveTenant),
      InstanceMethod("setMode", &EngineWrap::SetMode),
      InstanceMethod("info", &EngineWrap::Info),
      InstanceMethod("close", &EngineWrap::Close),
      InstanceMethod("join", &EngineWrap::Join),
    });
    exports.Set("Engine", ctor);
    return exports;
  }

  // JS thread: new Engine(options, onCompletions). Arguments are checked in TypeScript; here only their types.
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new Engine(options, onCompletions)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    pocket::EngineOptions opts;
    opts.path = o.Get("path").As<Napi::String>().Utf8Value();
    opts.sizeBytes = uint64_t(o.Get("sizeBytes").As<Napi::Number>().Int64Value());
    opts.queueDepth = o.Get("queueDepth").As<Napi::Number>().Uint32Value();
    opts.sqpoll = o.Get("sqpoll").As<Napi::Boolean>().Value();
    opts.submitQueueMax = size_t(o.Get("submitQueueMax").As<Napi::Number>().Uint32Value());
    opts.spinUs = o.Get("spinUs").As<Napi::Number>().Uint32Value();
    opts.poolBuffers = o.Get("poolBuffers").As<Napi::Number>().Uint32Value();
    opts.poolBufferBytes = o.Get("poolBufferBytes").As<Napi::Number>().Uint32Value();
    opts.model.tokensPerSec = o.Get("tokensPerSec").As<Napi::Number>().DoubleValue();
    opts.model.readCost = o.Get("readCost").As<Napi::Number>().Uint32Value();
    opts.model.writeCost = o.Get("writeCost").As<Napi::Number>().Uint32Value();
    opts.model.latencyLimitUs = o.Get("latencyLimitUs").As<Napi::Number>().DoubleValue();
    opts.inlineMode = !o.Get("thread").As<Napi::Boolean>().Value();
    auto* box = new Mailbox();
    box->inlineMode = opts.inlineMode;
    box_ = box;
    // Unbounded TSFN queue: the mailbox is the bound (at most one drain call is pending, plus the close call).
    tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "pocket-nvme-completions", 0, 1, box,
                      [](Napi::Env, void*, Mailbox* b) {
                        StopPolling(b);
                        delete b;
                      });
    Tsfn tsfn = tsfn_;
    pocket::EngineError err;
    // Engine thread: appends a batch to the mailbox; asks for a call when none is pending.
    engine_ = Engine::Open(opts, [tsfn, box](std::vector<Completion>&& b) mutable {
      bool call = false;
      {
        std::unique_lock<std::mutex> lock(box->mu);
        // Inline, this is the JS thread, which drains: it never waits (what it holds is bounded by the
        // requests accepted, the submit queue plus the ring, since it drains between its passes).
        if (!box->inlineMode) box->room.wait(lock, [&] { return box->dropping || box->items.size() < box->max; });
        if (box->dropping) {
          lock.unlock();
          Release(box, &b);
          return;
        }
        POCKET_ASSERT(b.size() <= box->batchMax, "a completion batch larger than the engine's bound");
        if (box->items.empty()) box->items = std::move(b);
        else box->items.insert(box->items.end(), b.begin(), b.end());
        POCKET_ASSERT(box->items.size() < box->max + box->batchMax, "the mailbox past its bound");
        box->ready.store(true, std::memory_order_release);
        // Inline, this is the JS thread: in a pass from the eventfd's callback, DeliverInline hands the
        // batch over right after; in one from a call out of JS, the thread-safe function does (JS is not re-entered).
        call = !box->callPending && !box->direct;
        box->callPending = box->callPending || call;
      }
      if (call && tsfn.BlockingCall(&kDrain) != napi_ok) {  // JS is gone: nobody will drain
        std::lock_guard<std::mutex> lock(box->mu);
        box->dropping = true;
        Release(box, &box->items);
        box->items.clear();
      }
    }, &err);
    if (!engine_) {
      tsfn_.Release();
      Napi::Error e = Napi::Error::New(env, err.message);
      e.Set("code", Napi::String::New(env, "NativeIo"));
      e.Set("errno", Napi::Number::New(env, err.errnum));
      e.Set("syscall", Napi::String::New(env, err.op));
      e.ThrowAsJavaScriptException();
      return;
    }
    box->pool = engine_->pool();  // before any request: no completion can need it earlier
    box->batchMax = engine_->completionBatchMax();
    box->spinNs = uint64_t(opts.spinUs) * 1000;
    if (engine_->inlineMode()) {
      callback_ = Napi::Persistent(info[1].As<Napi::Function>());
      async_ = std::make_unique<Napi::AsyncContext>(env, "pocket-nvme-completions");
      WatchCompletions(env);
    }
    else StartPolling(env, box);
    env_ = env;
    hooked_ = napi_add_env_cleanup_hook(env, TeardownHook, this) == napi_ok;
  }

  // JS thread (finalizer).
  ~EngineWrap() override { Teardown(); }

 private:
  // JS thread, when the environment is torn down (a worker thread ending): runs before the
  // thread-safe function's own cleanup (hooks run in reverse order), so the mailbox still exists.
  static void TeardownHook(void* self) {
    auto* wrap = static_cast<EngineWrap*>(self);
    wrap->hooked_ = false;
    wrap->Teardown();
  }

  // JS thread: an engine never closed is stopped here, its completions having no one to go to; one
  // closing is waited for. Afterwards no engine thread runs and the mailbox is not touched. Idempotent.
  void Teardown() {
    if (hooked_) {
      napi_remove_env_cleanup_hook(env_, TeardownHook, this);
      hooked_ = false;
    }
    if (!engine_) return;
    const bool abandoned = !closed_;  // else close() ran: its hook tells JS and lets go of the function
    if (abandoned) {
      closed_ = true;
      {
        std::lock_guard<std::mutex> lock(box_->mu);
        box_->dropping = true;
      }
      box_->room.notify_all();
      StopPolling(box_);
      engine_->Close(nullptr);
    }
    engine_->Join();
    if (abandoned) tsfn_.Release();  // after Join: the engine thread no longer calls it
    UnwatchCompletions();  // before the engine closes its eventfd
    engine_.reset();
    callback_.Reset();  // lets go of the JS engine object (the callback holds it)
  }

  // Inline mode, JS thread: a pass whenever the ring's eventfd says completions (or the token timer) wait.
  // Unreferenced: the thread-safe function keeps the loop alive while the engine is open, as with a thread.
  void WatchCompletions(Napi::Env env) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
    watch_ = new uv_poll_t();
    uv_poll_init(loop, watch_, engine_->eventFd());
    watch_->data = this;
    uv_poll_start(watch_, UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* self = static_cast<EngineWrap*>(h->data);
      uint64_t count = 0;
      if (::read(self->engine_->eventFd(), &count, sizeof count) < 0) { /* EAGAIN: already reset */ }
      self->box_->direct = true;
      self->engine_->Pump(true);
      self->box_->direct = false;
      self->DeliverInline();
    });
    uv_unref(reinterpret_cast<uv_handle_t*>(watch_));
  }

  // JS thread: stops WatchCompletions (before the engine's eventfd closes); idempotent.
  void UnwatchCompletions() {
    if (watch_ == nullptr) return;
    uv_poll_stop(watch_);
    uv_close(reinterpret_cast<uv_handle_t*>(watch_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    watch_ = nullptr;
  }

  // Inline mode, from a uv callback (no JS on the stack): hands what the pass answered to JS at once,
  // in a callback scope (the promises' continuations run when it closes). What the callback throws is
  // an uncaught exception, as from any event.
  void DeliverInline() {
    if (!box_->ready.load(std::memory_order_acquire)) return;
    Napi::Env env(env_);
    Napi::HandleScope handles(env);
    Napi::CallbackScope scope(env, *async_);
    try {
      Drain(env, callback_.Value(), box_, &kDrain);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  // Inline mode, inside a call from JS: a pass now; what it answers goes to JS through the
  // thread-safe function (the next turn of the loop, ahead of the close call), so JS is never re-entered.
  void PumpInline() {
    if (engine_ && engine_->inlineMode()) engine_->Pump(true);
  }

  // submit(n, ids: Float64Array, tenants: Uint32Array, offsets: Float64Array, lengths: Uint32Array,
  //        ops: Uint8Array (0 read, 1 write), writes: Array<Uint8Array | undefined>, rcs: Int32Array)
  // JS thread. Queues n requests under one lock; rcs[i] = 0 or -errno. A write's bytes are copied
  // into aligned memory (a pool slot when they fit) and zero-padded up to lengths[i]; a read
  // gets a pool slot when it fits, else a block from the pool's cache of large ones (reused: no page faults).
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const size_t n = info[0].As<Napi::Number>().Uint32Value();
    auto ids = info[1].As<Napi::Float64Array>();
    auto tenants = info[2].As<Napi::Uint32Array>();
    auto offsets = info[3].As<Napi::Float64Array>();
    auto lengths = info[4].As<Napi::Uint32Array>();
    auto ops = info[5].As<Napi::Uint8Array>();
    auto writes = info[6].As<Napi::Array>();
    auto rcs = info[7].As<Napi::Int32Array>();
    if (n > ids.ElementLength() || n > tenants.ElementLength() || n > offsets.ElementLength() || n > lengths.ElementLength() ||
        n > ops.ElementLength() || n > rcs.ElementLength()) {
      Napi::RangeError::New(env, "submit: n exceeds the arrays").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!engine_) {
      for (size_t i = 0; i < n; i++) rcs[i] = -ESHUTDOWN;
      return env.Undefined();
    }
    BufferPool& pool = *engine_->pool();
    requests_.clear();
    index_.clear();
    for (size_t i = 0; i < n; i++) {
      Request r;
      r.id = uint64_t(ids[i]);
      r.tenant = tenants[i];
      r.write = ops[i] == 1;
      r.offset = uint64_t(offsets[i]);
      r.length = lengths[i];
      r.pool = r.length <= pool.bufferBytes() ? pool.Acquire() : pocket::kOwnMemory;
      if (r.pool >= 0) r.buffer = pool.At(r.pool);
      else if ((r.buffer = pool.TakeLarge(r.length)) != nullptr) r.pool = pocket::kCachedMemory;
      if (r.buffer == nullptr) {
        rcs[i] = -ENOMEM;
        continue;
      }
      if (r.write) {
        Napi::Value v = writes[uint32_t(i)];
        const auto bytes = v.As<Napi::Uint8Array>();
        const size_t have = std::min<size_t>(bytes.ByteLength(), r.length);
        std::memcpy(r.buffer, bytes.Data(), have);
        if (have < r.length) std::memset(static_cast<char*>(r.buffer) + have, 0, r.length - have);
      }
      requests_.push_back(r);
      index_.push_back(i);
    }
    results_.assign(requests_.size(), 0);
    engine_->SubmitBatch(requests_.data(), requests_.size(), results_.data());
    PumpInline();
    for (size_t k = 0; k < requests_.size(); k++) {
      rcs[index_[k]] = results_[k];
      if (results_[k] == 0) box_->outstanding++;
      if (results_[k] != 0) {  // refused: the memory is still ours
        pool.Return(requests_[k].buffer, requests_[k].pool, requests_[k].length);
      }
    }
    return env.Undefined();
  }

  Napi::Value AddLatencyCritical(const Napi::CallbackInfo& info) {
    // addLatencyCritical(tenant, iops, readRatio, p95Us) → undefined, or why it was refused
    if (!engine_) return Napi::String::New(info.Env(), "the engine is closed");
    pocket::Slo slo;
    slo.iops = info[1].As<Napi::Number>().DoubleValue();
    slo.readRatio = info[2].As<Napi::Number>().DoubleValue();
    slo.p95Us = info[3].As<Napi::Number>().DoubleValue();
    std::string why;
    if (engine_->AddLatencyCritical(info[0].As<Napi::Number>().Uint32Value(), slo, &why)) return info.Env().Undefined();
    return Napi::String::New(info.Env(), why);
  }

  Napi::Value AddBestEffort(const Napi::CallbackInfo& info) {
    if (engine_) engine_->AddBestEffort(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  Napi::Value RemoveTenant(const Napi::CallbackInfo& info) {
    if (engine_) engine_->RemoveTenant(info[0].As<Napi::Number>().Uint32Value());
    PumpInline();
    return info.Env().Undefined();
  }

  Napi::Value SetMode(const Napi::CallbackInfo& info) {
    if (engine_) engine_->SetMode(info[0].As<Napi::String>().Utf8Value() == "fifo" ? pocket::Mode::Fifo : pocket::Mode::Qos);
    return info.Env().Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    if (!engine_) return o;
    o.Set("capacityBytes", Napi::Number::New(info.Env(), double(engine_->capacityBytes())));
    o.Set("queueDepth", Napi::Number::New(info.Env(), engine_->queueDepth()));
    o.Set("sqpoll", Napi::Boolean::New(info.Env(), engine_->sqpoll()));
    o.Set("fixedBuffers", Napi::Boolean::New(info.Env(), engine_->fixedBuffers()));
    o.Set("completed", Napi::Number::New(info.Env(), double(engine_->completed())));
    o.Set("thread", Napi::Boolean::New(info.Env(), !engine_->inlineMode()));
    return o;
  }

  // close(): queued requests fail with ECANCELED, in-flight ones complete; the callback then gets null.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (engine_ && !closed_) {
      closed_ = true;
      Tsfn tsfn = tsfn_;
      // Engine thread, after its last completion: tell JS, then let go of the function.
      engine_->Close([tsfn]() mutable {
        tsfn.BlockingCall(&kClosed);
        tsfn.Release();
      });
      PumpInline();
    }
    return info.Env().Undefined();
  }

  // join(): after the null callback; the thread has finished its loop.
  Napi::Value Join(const Napi::CallbackInfo& info) {
    if (closed_) Teardown();
    return info.Env().Undefined();
  }

  std::unique_ptr<Engine> engine_;
  Tsfn tsfn_;
  std::vector<Request> requests_;  // scratch for submit (JS thread)
  std::vector<size_t> index_;
  std::vector<int32_t> results_;
  bool closed_ = false;
  napi_env env_ = nullptr;
  bool hooked_ = false;  // TeardownHook is registered
  uv_poll_t* watch_ = nullptr;  // inline mode: WatchCompletions
  Napi::FunctionReference callback_;  // inline mode: the completion callback, called from DeliverInline
  std::unique_ptr<Napi::AsyncContext> async_;
  Mailbox* box_ = nullptr;  // owned by the TSFN (deleted when it is finalized)
};

// crc32(bytes: Uint8Array, previous: number) → number: zlib's crc32, by carry-less multiplication where
// the CPU has it. Arguments are checked in TypeScript; here only their types.
Napi::Value Crc32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "crc32(bytes: Uint8Array, previous: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const auto bytes = info[0].As<Napi::TypedArray>();
  const auto* data = static_cast<const uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
  return Napi::Number::New(env, pocket::Crc32(info[1].As<Napi::Number>().Uint32Value(), data, bytes.ByteLength()));
}

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32", Napi::Function::New(env, Crc32, "crc32"));
  exports.Set("crc32Accelerated", Napi::Boolean::New(env, pocket::Crc32Accelerated()));
  return EngineWrap::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(pocket_nvme, InitAll)
