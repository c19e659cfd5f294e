// Node-API glue for the NVMe engine. Every function here runs on the JS
// thread except the engine's completion handler and close hook, which only
// hand batches to a ThreadSafeFunction (the one Node-API object that may be
// touched from another thread).
#include <napi.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "engine.h"

namespace {

using pocket::Completion;
using pocket::Engine;

// A batch of completions on its way to JS; nullptr marks "closed".
using Batch = std::vector<Completion>;

// JS thread: turns a batch into typed arrays and calls the JS callback with them.
void CallJs(Napi::Env env, Napi::Function callback, std::nullptr_t*, Batch* batch) {
  if (env == nullptr) {  // the environment is going away: release the read buffers ourselves
    if (batch) for (auto& c : *batch) std::free(c.buffer);
    delete batch;
    return;
  }
  if (batch == nullptr) {
    callback.Call({env.Null()});
    return;
  }
  const size_t n = batch->size();
  auto ids = Napi::Float64Array::New(env, n);
  auto results = Napi::Int32Array::New(env, n);
  auto latencies = Napi::Float64Array::New(env, n);
  auto buffers = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    Completion& c = (*batch)[i];
    ids[i] = double(c.id);
    results[i] = c.result;
    latencies[i] = double(c.latencyNs);
    if (c.buffer != nullptr) {
      // Zero copy: the aligned read buffer becomes the Buffer's memory, freed with it.
      buffers.Set(uint32_t(i), Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(c.buffer), size_t(c.result),
                                                          [](Napi::Env, uint8_t* p) { std::free(p); }));
      c.buffer = nullptr;
    }
  }
  delete batch;
  Napi::Object out = Napi::Object::New(env);
  out.Set("ids", ids);
  out.Set("results", results);
  out.Set("latencies", latencies);
  out.Set("buffers", buffers);
  callback.Call({out});
}

using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Batch, CallJs>;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Engine", {
      InstanceMethod("read", &EngineWrap::Read),
      InstanceMethod("write", &EngineWrap::Write),
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
    opts.model.tokensPerSec = o.Get("tokensPerSec").As<Napi::Number>().DoubleValue();
    opts.model.readCost = o.Get("readCost").As<Napi::Number>().Uint32Value();
    opts.model.writeCost = o.Get("writeCost").As<Napi::Number>().Uint32Value();
    opts.model.latencyLimitUs = o.Get("latencyLimitUs").As<Napi::Number>().DoubleValue();
    tsfn_ = Tsfn::New(env, info[1].As<Napi::Function>(), "pocket-nvme-completions", 256, 1);
    auto drop = dropping_;
    Tsfn tsfn = tsfn_;
    pocket::EngineError err;
    // Engine thread: hands each batch to JS (blocking when 256 batches wait: backpressure on the device loop).
    engine_ = Engine::Open(opts, [tsfn, drop](Batch&& b) mutable {
      if (drop->load()) {
        for (auto& c : b) std::free(c.buffer);
        return;
      }
      auto* batch = new Batch(std::move(b));
      if (tsfn.BlockingCall(batch) != napi_ok) {
        for (auto& c : *batch) std::free(c.buffer);
        delete batch;
      }
    }, &err);
    if (!engine_) {
      tsfn_.Release();
      Napi::Error e = Napi::Error::New(env, err.message);
      e.Set("code", Napi::String::New(env, "NativeIo"));
      e.Set("errno", Napi::Number::New(env, err.errnum));
      e.Set("syscall", Napi::String::New(env, err.op));
      e.ThrowAsJavaScriptException();
    }
  }

  // JS thread (finalizer): an engine never closed is stopped here; its completions have no one to go to.
  ~EngineWrap() override {
    if (!engine_) return;
    if (!closed_) {
      dropping_->store(true);
      engine_->Close(nullptr);
      engine_->Join();
      tsfn_.Release();
    }
  }

 private:
  Napi::Value Read(const Napi::CallbackInfo& info) {
    // read(id, tenant, offset, length) → 0 or -errno
    const uint64_t id = uint64_t(info[0].As<Napi::Number>().Int64Value());
    const uint32_t tenant = info[1].As<Napi::Number>().Uint32Value();
    const uint64_t offset = uint64_t(info[2].As<Napi::Number>().Int64Value());
    const uint32_t length = info[3].As<Napi::Number>().Uint32Value();
    if (!engine_) return Napi::Number::New(info.Env(), -ESHUTDOWN);
    void* buf = pocket::AllocateAligned(length);
    if (!buf) return Napi::Number::New(info.Env(), -ENOMEM);
    const int rc = engine_->Submit(id, tenant, pocket::Op::Read, offset, length, buf);
    if (rc != 0) std::free(buf);
    return Napi::Number::New(info.Env(), rc);
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    // write(id, tenant, offset, bytes: Uint8Array) → 0 or -errno; the bytes are copied into an aligned buffer.
    const uint64_t id = uint64_t(info[0].As<Napi::Number>().Int64Value());
    const uint32_t tenant = info[1].As<Napi::Number>().Uint32Value();
    const uint64_t offset = uint64_t(info[2].As<Napi::Number>().Int64Value());
    Napi::Uint8Array data = info[3].As<Napi::Uint8Array>();
    if (!engine_) return Napi::Number::New(info.Env(), -ESHUTDOWN);
    const size_t length = data.ByteLength();
    void* buf = pocket::AllocateAligned(length);
    if (!buf) return Napi::Number::New(info.Env(), -ENOMEM);
    std::memcpy(buf, data.Data(), length);
    const int rc = engine_->Submit(id, tenant, pocket::Op::Write, offset, uint32_t(length), buf);
    if (rc != 0) std::free(buf);
    return Napi::Number::New(info.Env(), rc);
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
    o.Set("completed", Napi::Number::New(info.Env(), double(engine_->completed())));
    return o;
  }

  // close(): queued requests fail with ECANCELED, in-flight ones complete; the callback then gets null.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (engine_ && !closed_) {
      closed_ = true;
      Tsfn tsfn = tsfn_;
      // Engine thread, after its last completion: tell JS, then let go of the function.
      engine_->Close([tsfn]() mutable {
        tsfn.BlockingCall(static_cast<Batch*>(nullptr));
        tsfn.Release();
      });
    }
    return info.Env().Undefined();
  }

  // join(): after the null callback; the thread has finished its loop.
  Napi::Value Join(const Napi::CallbackInfo& info) {
    if (engine_ && closed_) {
      engine_->Join();
      engine_.reset();
    }
    return info.Env().Undefined();
  }

  std::unique_ptr<Engine> engine_;
  Tsfn tsfn_;
  bool closed_ = false;
  std::shared_ptr<std::atomic<bool>> dropping_ = std::make_shared<std::atomic<bool>>(false);
};

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  return EngineWrap::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(pocket_nvme, InitAll)
