import { getEventListeners } from "node:events";
import net from "node:net";
import { Readable } from "node:stream";
import vm from "node:vm";
import { AbortError } from "../../bus/caller";
import { ConnectFailedError, parseAddr } from "../../bus/tcp-client";
import { NoResponderError } from "../../bus/nats-rpc";
import { AlreadyExistsError, BusyError, ErrorCode, InvalidArgumentError, isPocketError, NodeUnavailableError, NotFoundError, TimeoutError } from "../../schemas/errors";
import { ClientTransport, PocketClient, type PocketJob, type PocketOptions, type RegisteredJob } from "../../client/pocket";
import { CallScope } from "../../client/call-scope";
import { backoffMs, defaultRetryPolicy, mayRetry, resolvePolicy, Retry, type RetryEvent } from "../../client/retry";
import { eventually, patternBytes, startTestCluster, type TestCluster } from "../harness/cluster";
import { TcpProxy } from "../harness/proxy";
import { within } from "../harness/wait";

/**
 * The SDK's edge against a real cluster whose one storage node sits behind a
 * gate (a TCP proxy clients are told is the node): open, refusing every new
 * connection (the node unreachable), or stalling (a peer that never
 * answers). Bad input is refused before anything is sent; an aborted signal
 * or a passed deadline ends a call at once and leaves nothing half done;
 * retries recover from a node that was briefly unreachable, and only from
 * what may pass.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
/** Small extents: a put of a few MiB is several of them. */
const extentBytes = 256 * KiB;
/** Longer than any wait below: a call that ends first was ended by what the test says, not by the direct transport's connect timeout (3 s). */
const promptMs = 2_000;

/** A server that accepts connections and never answers: a peer that has stopped. */
class Stall {
  accepted = 0;
  readonly #sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server) {
    server.on("connection", (s) => {
      this.accepted++;
      this.#sockets.add(s);
      s.on("error", () => s.destroy());
      s.on("close", () => this.#sockets.delete(s));
    });
  }

  static async listen(): Promise<Stall> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return new Stall(server);
  }

  get target(): { host: string; port: number } {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let t: TestCluster;
let gate: TcpProxy;
let node: { host: string; port: number };
let stall: Stall;
let reg: RegisteredJob;
/** The job through the test cluster's client (its node connection was made while the gate was open). */
let job: PocketJob;
/** Clients opened by a test, closed after it. */
const opened: PocketClient[] = [];

/** The gate: the node itself, no one (connections closed at once), or a peer that never answers. */
function setGate(to: "open" | "refuse" | "stall"): void {
  gate.target = to === "open" ? node : to === "stall" ? stall.target : undefined;
}

/** A lambda of the job with a client of its own: its node connections go through the gate as it is now. */
async function lambda(options: Pick<PocketOptions, "requestTimeoutMs" | "transport"> = {}): Promise<PocketJob> {
  const c = await PocketClient.connect({ servers: t.nats.url, credentials: reg.credentials, ...options });
  opened.push(c);
  return c.job(reg.token);
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error("expected the call to fail; it succeeded"); }, (e: unknown) => e);
}

async function expectAbsent(path: string): Promise<void> {
  await expect(job.stat(path)).rejects.toBeInstanceOf(NotFoundError);
}

beforeAll(async () => {
  t = await startTestCluster({ shards: 1, dram: 0, minNodes: 1, maxNodes: 1, extentBytesMax: extentBytes });
  gate = await TcpProxy.listen();
  stall = await Stall.listen();
  // The node tells everyone the gate's address, and the gate forwards to where the node listens.
  const { listen } = await t.cluster.addNode("dram-gated", 256 * MiB, { advertiseAddr: gate.addr });
  node = parseAddr(listen);
  setGate("open");
  await eventually(async () => (await t.client.listNodes()).some((n) => n.nodeId === "dram-gated" && n.state === "active"), 10_000, "the node active");
  reg = await t.client.registerJob("client-edges");
  job = t.client.job(reg.token);
});

afterEach(async () => {
  setGate("open");
  for (const c of opened.splice(0)) await c.close();
});

afterAll(async () => {
  await t?.stop();
  await gate?.close();
  await stall?.close();
});

describe("input is checked at the edge", () => {
  /** The job as plain JavaScript sees it: any value may be passed. */
  const untyped = (): Record<"put" | "putStream" | "get" | "stat", (...args: unknown[]) => Promise<unknown>> => job as never;

  test("put of a value that is not bytes is a TypeError naming the argument; nothing is stored", async () => {
    const notBytes: unknown[] = [42, undefined, null, true, {}, [1, 2, 3], new ArrayBuffer(8), new Float32Array(4), new DataView(new ArrayBuffer(4))];
    for (const value of notBytes) {
      const e = await failure(untyped().put("edge/not-bytes", value));
      expect(e).toBeInstanceOf(TypeError);
      expect((e as Error).message).toMatch(/^put\(path, data\): data must be a Uint8Array, Buffer or string/);
    }
    await expectAbsent("edge/not-bytes");
  });

  test("a stream given to put is a TypeError pointing to putStream; bytes given to putStream point back to put", async () => {
    const streams: unknown[] = [Readable.from([Buffer.from("abc")]), (async function* () { yield Buffer.from("abc"); })()];
    for (const s of streams) {
      const e = await failure(untyped().put("edge/stream", s));
      expect(e).toBeInstanceOf(TypeError);
      expect((e as Error).message).toContain("use putStream(path, stream)");
    }
    for (const bytes of [Buffer.from("abc"), "abc", 42]) {
      const e = await failure(untyped().putStream("edge/stream", bytes));
      expect(e).toBeInstanceOf(TypeError);
      expect((e as Error).message).toMatch(/^putStream\(path, source\): source/);
    }
    await expectAbsent("edge/stream");
  });

  test("a stream of chunks that are not bytes fails with a TypeError and commits nothing", async () => {
    const objects = Readable.from([Buffer.alloc(1000, 1), 7, Buffer.alloc(10)]);
    const e = await failure(job.putStream("edge/object-mode", objects as AsyncIterable<Uint8Array>));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toContain("chunk 1 of the source is number");
    expect(objects.destroyed).toBe(true);
    await expectAbsent("edge/object-mode");
  });

  test("bad paths, ranges and options: a TypeError for the wrong kind, InvalidArgument for a bad value, before anything is sent", async () => {
    await job.put("edge/ranged", "0123456789");
    expect(await failure(untyped().put(42, "x"))).toBeInstanceOf(TypeError);
    expect(await failure(untyped().get(undefined))).toBeInstanceOf(TypeError);
    for (const range of [{ offset: -1 }, { length: 1.5 }, { offset: "3" }, { length: Number.NaN }]) {
      expect(await failure(job.get("edge/ranged", range as never))).toBeInstanceOf(InvalidArgumentError);
      expect(() => job.getStream("edge/ranged", range as never)).toThrow(InvalidArgumentError);
    }
    expect(await failure(job.putStream("edge/sized", Readable.from([]), { size: -5 }))).toBeInstanceOf(InvalidArgumentError);
    expect(await failure(job.list("edge", { limit: 0 }))).toBeInstanceOf(InvalidArgumentError);
    expect(await failure(job.get("edge/ranged", { timeoutMs: -1 }))).toBeInstanceOf(InvalidArgumentError);
    expect(await failure(job.get("edge/ranged", { retry: { attemptsMax: 0 } }))).toBeInstanceOf(InvalidArgumentError);
    expect(await failure(job.get("edge/ranged", { signal: {} as AbortSignal }))).toBeInstanceOf(TypeError);
    expect(await failure(untyped().stat("edge/ranged", "not options"))).toBeInstanceOf(TypeError);
    // A path of the right kind that the store refuses is its typed error, as before.
    expect(isPocketError(await failure(job.put("a//b", "x")), ErrorCode.InvalidArgument)).toBe(true);
    expect((await job.get("edge/ranged", { offset: 2, length: 3 })).toString()).toBe("234");
  });
});

describe("signal", () => {
  test("an aborted signal rejects every call at once with AbortError (cause: its reason), and nothing is changed", async () => {
    const ac = new AbortController();
    const reason = new Error("the task was cancelled");
    ac.abort(reason);
    const signal = ac.signal;
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["put", () => job.put("edge/pre-aborted", patternBytes(MiB, 1), { signal })],
      ["put inline", () => job.put("edge/pre-aborted", "x", { signal })],
      ["putStream", () => job.putStream("edge/pre-aborted", Readable.from([Buffer.alloc(10)]), { signal })],
      ["get", () => job.get("edge/ranged", { signal })],
      ["getStream", async () => { for await (const _ of job.getStream("edge/ranged", { signal })) { /* nothing arrives */ } }],
      ["stat", () => job.stat("edge/ranged", { signal })],
      ["list", () => job.list("", { signal })],
      ["listAll", async () => { for await (const _ of job.listAll("", { signal })) { /* nothing arrives */ } }],
      ["count", () => job.count("", { signal })],
      ["exists", () => job.exists("edge/ranged", { signal })],
      ["mkdir", () => job.mkdir("edge/pre-aborted-dir", { signal })],
      ["delete", () => job.delete("edge/ranged", { signal })],
      ["registerJob", () => t.client.registerJob("never-registered", {}, { signal })],
      ["renewLease", () => t.client.renewLease(reg.token, { signal })],
      ["deregisterJob", () => t.client.deregisterJob(reg.token, { signal })],
      ["listNodes", () => t.client.listNodes({ signal })],
    ];
    for (const [name, call] of calls) {
      const e = await failure(call());
      expect([name, e instanceof AbortError]).toEqual([name, true]);
      expect((e as AbortError).cause).toBe(reason);
      expect((e as AbortError).code).toBe("ABORT_ERR");
    }
    await expectAbsent("edge/pre-aborted");
    await expectAbsent("edge/pre-aborted-dir");
    expect((await job.get("edge/ranged")).toString()).toBe("0123456789");
    expect((await t.client.listJobs()).map((j) => j.name)).not.toContain("never-registered");
  });

  test("an abort while a put's extents are in flight rejects at once; the put is not committed; the signal keeps no listener", async () => {
    setGate("stall");
    const lam = await lambda();
    const ac = new AbortController();
    const acceptedBefore = stall.accepted;
    const put = lam.put("edge/abandoned", patternBytes(2 * MiB, 2), { signal: ac.signal });
    // The extents are on their way once the node's connection is open (and never answered).
    await eventually(() => stall.accepted > acceptedBefore, 5_000, "the put's node connection");
    expect(getEventListeners(ac.signal, "abort").length).toBeGreaterThan(0);
    ac.abort();
    expect(await within(failure(put), promptMs, "the aborted put")).toBeInstanceOf(AbortError);
    expect(getEventListeners(ac.signal, "abort")).toEqual([]);
    setGate("open");
    await expectAbsent("edge/abandoned");
    // Nothing of it holds the path: a create-only put of it succeeds.
    await job.put("edge/abandoned", patternBytes(2 * MiB, 3), { createOnly: true });
    expect((await job.get("edge/abandoned")).equals(patternBytes(2 * MiB, 3))).toBe(true);
  });

  test("one signal serves many calls and keeps no listener once they settle", async () => {
    const ac = new AbortController();
    const { signal } = ac;
    for (let i = 0; i < 20; i++) {
      await job.put(`edge/many/${i}`, patternBytes(i % 2 === 0 ? 100 : 300 * KiB, i), { signal });
      expect((await job.get(`edge/many/${i}`, { signal })).equals(patternBytes(i % 2 === 0 ? 100 : 300 * KiB, i))).toBe(true);
      await job.stat(`edge/many/${i}`, { signal, timeoutMs: 10_000 });
    }
    await job.list("edge/many", { signal });
    await failure(job.get("edge/many/missing", { signal }));
    const chunks: Buffer[] = [];
    for await (const c of job.getStream("edge/many/1", { signal })) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(patternBytes(300 * KiB, 1))).toBe(true);
    await eventually(() => getEventListeners(signal, "abort").length === 0, 2_000, "the stream's listener gone once it closed");
    expect(getEventListeners(signal, "abort")).toEqual([]);
  });

  test.each([ClientTransport.Auto, ClientTransport.Nats])("one signal shared by 60 calls at once, each of many extents, over %s: one listener on it, no MaxListenersExceededWarning", async (transport) => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => { if (w.name === "MaxListenersExceededWarning") warnings.push(w); };
    // Node warns on its own process object, not on the copy jest gives a test file.
    const nodeProcess = vm.runInThisContext("process") as NodeJS.Process;
    nodeProcess.on("warning", onWarning);
    try {
      // The warning reaches this test when a signal does get too many listeners (Node prints this one).
      const noisy = new AbortController();
      for (let i = 0; i < 11; i++) noisy.signal.addEventListener("abort", () => undefined);
      await eventually(() => warnings.length === 1, 2_000, "the warning of a signal with 11 listeners");
      warnings.length = 0;
      const lam = await lambda({ transport });
      const { signal } = new AbortController();
      const calls = 60;
      const data = (i: number): Buffer => patternBytes(4 * extentBytes, 100 + i);
      let most = 0;
      const watching = async <T>(all: Array<Promise<T>>): Promise<T[]> => {
        let settled = false;
        const done = Promise.all(all).finally(() => { settled = true; });
        while (!settled) {
          most = Math.max(most, getEventListeners(signal, "abort").length);
          await new Promise((r) => setImmediate(r));
        }
        return done;
      };
      await watching(Array.from({ length: calls }, (_, i) => lam.put(`edge/shared/${i}`, data(i), { signal })));
      const got = await watching(Array.from({ length: calls }, (_, i) => lam.get(`edge/shared/${i}`, { signal })));
      got.forEach((bytes, i) => expect([i, bytes.equals(data(i))]).toEqual([i, true]));
      await job.delete("edge/shared", { recursive: true });
      // A warning is emitted on the next tick: give it one.
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.message)).toEqual([]);
      expect(most).toBe(1);
      expect(getEventListeners(signal, "abort")).toEqual([]);
    } finally {
      nodeProcess.off("warning", onWarning);
    }
  });

  test("an abort ends at once every call sharing the signal, with its extents in flight; nothing is committed", async () => {
    setGate("stall");
    const lam = await lambda();
    const ac = new AbortController();
    const acceptedBefore = stall.accepted;
    const puts = Array.from({ length: 20 }, (_, i) => lam.put(`edge/shared-abort/${i}`, patternBytes(4 * extentBytes, 200 + i), { signal: ac.signal }));
    await eventually(() => stall.accepted > acceptedBefore, 5_000, "the puts' node connection");
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(1);
    ac.abort();
    const failures = await within(Promise.all(puts.map(failure)), promptMs, "the aborted puts");
    expect(failures.filter((e) => !(e instanceof AbortError))).toEqual([]);
    expect(getEventListeners(ac.signal, "abort")).toEqual([]);
    setGate("open");
    for (let i = 0; i < puts.length; i++) await expectAbsent(`edge/shared-abort/${i}`);
  });

  test("an abort fails a getStream with AbortError and destroys it", async () => {
    const data = patternBytes(3 * MiB, 4);
    await job.put("edge/streamed", data);
    const ac = new AbortController();
    const stream = job.getStream("edge/streamed", { signal: ac.signal });
    const first = (await stream[Symbol.asyncIterator]().next()).value as Buffer;
    expect(first.equals(data.subarray(0, first.byteLength))).toBe(true);
    const failed = new Promise<unknown>((resolve) => stream.once("error", resolve));
    ac.abort();
    expect(await within(failed, promptMs, "the stream's failure")).toBeInstanceOf(AbortError);
    expect(stream.destroyed).toBe(true);
  });

  test("an abort while putStream waits for its source rejects at once, releases the source and commits nothing", async () => {
    const source = new Readable({ read() { /* the producer is slow: nothing more comes */ } });
    source.push(patternBytes(600 * KiB, 5));
    const ac = new AbortController();
    const put = job.putStream("edge/slow-source", source, { signal: ac.signal });
    await eventually(() => source.readableLength === 0, 5_000, "the first chunk taken");
    ac.abort();
    expect(await within(failure(put), promptMs, "the aborted putStream")).toBeInstanceOf(AbortError);
    await eventually(() => source.destroyed, promptMs, "the source released");
    await expectAbsent("edge/slow-source");
  });
});

describe("timeoutMs", () => {
  test("a call past its timeoutMs rejects with TimeoutError; a put that timed out before its commit is not visible", async () => {
    await job.put("edge/timed", patternBytes(MiB, 6));
    setGate("stall");
    const lam = await lambda();
    const started = Date.now();
    const put = await failure(lam.put("edge/timed-put", patternBytes(MiB, 7), { timeoutMs: 300, retry: false }));
    expect(put).toBeInstanceOf(TimeoutError);
    const get = await failure(lam.get("edge/timed", { timeoutMs: 300, retry: { attemptsMax: 50 } }));
    expect(get).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(promptMs);
    setGate("open");
    await expectAbsent("edge/timed-put");
  });
});

describe("retry", () => {
  /** A retry policy that records each retry and opens the gate at the first: the node was unreachable only for a moment. */
  function reopening(events: RetryEvent[]): { attemptsMax: number; backoffInitialMs: number; onRetry: (e: RetryEvent) => void } {
    return { attemptsMax: 5, backoffInitialMs: 20, onRetry: (e) => { events.push(e); setGate("open"); } };
  }

  test("a get retried after the node was briefly unreachable returns the bytes", async () => {
    const data = patternBytes(MiB + 5, 8);
    await job.put("edge/retried-get", data);
    setGate("refuse");
    const lam = await lambda();
    const events: RetryEvent[] = [];
    expect((await lam.get("edge/retried-get", { retry: reopening(events) })).equals(data)).toBe(true);
    expect(events.map((e) => [e.attempt, e.error instanceof NodeUnavailableError])).toEqual([[1, true]]);
  });

  test("a put retried after the node was briefly unreachable is committed whole, once", async () => {
    setGate("refuse");
    const lam = await lambda();
    expect(await failure(lam.put("edge/retried-put", patternBytes(MiB, 9), { retry: false }))).toBeInstanceOf(NodeUnavailableError);
    await expectAbsent("edge/retried-put");
    const events: RetryEvent[] = [];
    const data = patternBytes(3 * MiB + 1, 10);
    const put = await lam.put("edge/retried-put", data, { retry: reopening(events) });
    expect(put).toEqual({ version: 1, size: data.byteLength });
    expect(events.map((e) => [e.attempt, e.error instanceof NodeUnavailableError])).toEqual([[1, true]]);
    expect((await job.get("edge/retried-put")).equals(data)).toBe(true);
  });

  test("errors that cannot pass are not retried", async () => {
    await job.put("edge/exists", "x");
    const events: RetryEvent[] = [];
    const retry = { attemptsMax: 5, backoffInitialMs: 1, onRetry: (e: RetryEvent) => { events.push(e); } };
    expect(await failure(job.get("edge/missing", { retry }))).toBeInstanceOf(NotFoundError);
    expect(await failure(job.put("edge/exists", "y", { createOnly: true, retry }))).toBeInstanceOf(AlreadyExistsError);
    expect(isPocketError(await failure(job.put("../escape", "y", { retry })), ErrorCode.InvalidArgument)).toBe(true);
    expect(await failure(job.delete("edge/missing", { retry }))).toBeInstanceOf(NotFoundError);
    expect(events).toEqual([]);
  });

  test("retries are bounded by attemptsMax, and end at once on an abort during the wait", async () => {
    await job.put("edge/unreachable", patternBytes(MiB, 11));
    setGate("refuse");
    const lam = await lambda();
    const events: RetryEvent[] = [];
    const bounded = await failure(lam.get("edge/unreachable", { retry: { attemptsMax: 3, backoffInitialMs: 5, onRetry: (e) => { events.push(e); } } }));
    expect(bounded).toBeInstanceOf(NodeUnavailableError);
    expect(events.map((e) => e.attempt)).toEqual([1, 2]);
    const ac = new AbortController();
    const waiting = lam.get("edge/unreachable", { signal: ac.signal, retry: { attemptsMax: 5, backoffInitialMs: 60_000, backoffMaxMs: 60_000, totalMs: 600_000, onRetry: () => ac.abort() } });
    expect(await within(failure(waiting), promptMs, "the get aborted in its wait")).toBeInstanceOf(AbortError);
    const deadline = lam.get("edge/unreachable", { timeoutMs: 500, retry: { attemptsMax: 5, backoffInitialMs: 60_000, backoffMaxMs: 60_000, totalMs: 600_000 } });
    // No retry starts whose wait would pass the deadline: the last failure is reported, before the deadline.
    expect(await within(failure(deadline), promptMs, "the get with a deadline")).toBeInstanceOf(NodeUnavailableError);
  });
});

describe("which failures a policy retries", () => {
  test("transient failures for idempotent calls; only failures that show nothing was done for the others", () => {
    const failures = {
      busy: new BusyError("b"), timeout: new TimeoutError("t"), unavailable: new NodeUnavailableError("u"), notFound: new NotFoundError("n"),
      connectFailed: new ConnectFailedError("c"), noResponder: new NoResponderError("r"), abort: new AbortError(), plain: new Error("x"),
    };
    const retried = (kind: Retry): string[] => Object.entries(failures).filter(([, e]) => mayRetry(kind, e)).map(([k]) => k).sort();
    expect(retried(Retry.Idempotent)).toEqual(["busy", "connectFailed", "noResponder", "timeout", "unavailable"]);
    expect(retried(Retry.Once)).toEqual(["busy", "connectFailed", "noResponder"]);
    expect(retried(Retry.Never)).toEqual([]);
  });

  test("a call's policy is the client's, field by field; false turns retries off; waits grow, capped, with jitter", () => {
    expect(resolvePolicy(undefined, undefined)).toEqual(defaultRetryPolicy);
    expect(resolvePolicy({ attemptsMax: 6 }, { backoffMaxMs: 70, totalMs: undefined })).toEqual({ ...defaultRetryPolicy, attemptsMax: 6, backoffMaxMs: 70 });
    expect(resolvePolicy(false, undefined)).toBeUndefined();
    expect(resolvePolicy(false, { attemptsMax: 2 })).toMatchObject({ attemptsMax: 2 });
    expect(resolvePolicy({ attemptsMax: 4 }, false)).toBeUndefined();
    expect(resolvePolicy(undefined, { attemptsMax: 1 })).toBeUndefined();
    expect(() => resolvePolicy(undefined, { attemptsMax: 1000 })).toThrow(InvalidArgumentError);
    const policy = { ...defaultRetryPolicy, backoffInitialMs: 100, backoffMaxMs: 1_000 };
    for (let n = 1; n <= 8; n++) {
      const full = Math.min(1_000, 100 * 2 ** (n - 1));
      for (let i = 0; i < 50; i++) {
        const d = backoffMs(policy, n);
        expect(d).toBeGreaterThanOrEqual(full / 2);
        expect(d).toBeLessThanOrEqual(full);
      }
    }
  });
});

describe("an abort while a change is on its way", () => {
  test("the change goes without the signal and is waited for: one that succeeds is reported, one that fails ends the call with AbortError", async () => {
    for (const committed of [true, false]) {
      const ac = new AbortController();
      const scope = new CallScope({ signal: ac.signal }, "put", "x", 1_000);
      let finish!: () => void;
      const change = new Promise<string>((resolve, reject) => { finish = () => (committed ? resolve("committed") : reject(new NodeUnavailableError("the commit was lost"))); });
      let sentWith: AbortSignal | undefined = ac.signal;
      const call = scope.race(scope.committing(() => {
        sentWith = scope.request().signal;
        return change;
      }));
      ac.abort();
      expect(sentWith).toBeUndefined();
      expect(scope.aborted).toBe(false);
      finish();
      if (committed) expect(await call).toBe("committed");
      else expect(await failure(call)).toBeInstanceOf(AbortError);
      expect(scope.aborted).toBe(!committed);
      scope.close();
      expect(getEventListeners(ac.signal, "abort")).toEqual([]);
    }
  });
});
