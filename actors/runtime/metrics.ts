import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from "prom-client";
import { ErrorCode } from "../../schemas/errors";
import { Transport, type DispatchObserver, type DispatchProbe, type DispatchResult } from "../../bus/router";
import type { TcpServerStats } from "../../bus/tcp-server";

/**
 * Upper bounds of the request latency buckets, in seconds: from 50 µs (a
 * round trip on the direct transport over loopback) to 10 s (the RPC deadline).
 */
export const latencyBucketsSeconds: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

/** The `operation` label of requests naming an operation the actor does not serve (remote names never become labels). */
export const UnknownOperation = "unknown";

const errorCodes: readonly ErrorCode[] = Object.values(ErrorCode);
const errorIndex = new Map<string, number>(errorCodes.map((c, i) => [c, i]));
const internalIndex = errorIndex.get(ErrorCode.Internal)!;

type Labels = Record<string, string | number>;
interface Sample { readonly metricName?: string; readonly labels: Labels; readonly value: number }

/**
 * One operation on one transport: plain numbers, bumped on every request
 * and read when the registry is scraped. prom-client's own metric classes
 * hash their labels on every update (about 0.4 µs per histogram observation,
 * 0.9 µs for a histogram and two counters); these cost about 10 ns.
 */
class OperationStats implements DispatchProbe {
  count = 0;
  sumSeconds = 0;
  /** Requests per bucket (not cumulative); the last one is above every bound. */
  readonly buckets = new Float64Array(latencyBucketsSeconds.length + 1);
  requestBytes = 0;
  replyBytes = 0;
  /** Errors per code, in `errorCodes` order: failed requests and requests a transport refused. */
  readonly errors = new Float64Array(errorCodes.length);

  constructor(readonly operation: string, readonly transport: Transport, private readonly inflight: Record<Transport, number>) {}

  begin(): number {
    this.inflight[this.transport]++;
    return performance.now();
  }

  end(startedMs: number, requestBytes: number, result: DispatchResult): void {
    this.inflight[this.transport]--;
    const seconds = (performance.now() - startedMs) / 1000;
    this.count++;
    this.sumSeconds += seconds;
    let i = 0;
    while (i < latencyBucketsSeconds.length && seconds > latencyBucketsSeconds[i]!) i++;
    this.buckets[i]++;
    this.requestBytes += requestBytes;
    if (result.ok) this.replyBytes += result.meta.byteLength + (result.payload?.byteLength ?? 0);
    else this.refused(result.code);
  }

  refused(code: ErrorCode): void {
    this.errors[errorIndex.get(code) ?? internalIndex]++;
  }

  get touched(): boolean {
    return this.count > 0 || this.errors.some((n) => n > 0);
  }
}

/**
 * The requests an actor's routers dispatch, per operation and transport
 * (a `DispatchObserver`: give it to every router the actor serves with
 * `router.observe(metrics.requests)`). Bounded: one entry per operation the
 * routers serve, plus `unknown`, per transport.
 */
export class RequestMetrics implements DispatchObserver {
  readonly #stats = new Map<string, OperationStats>();
  /** Requests being handled now, per transport (every router of the actor together). */
  readonly inflight: Record<Transport, number> = { [Transport.Nats]: 0, [Transport.Tcp]: 0 };

  probe(operation: string | undefined, transport: Transport): DispatchProbe {
    const name = operation ?? UnknownOperation;
    const key = `${transport} ${name}`;
    let s = this.#stats.get(key);
    if (!s) this.#stats.set(key, (s = new OperationStats(name, transport, this.inflight)));
    return s;
  }

  /** The operations that have seen a request (or a refusal) so far. */
  *touched(): IterableIterator<OperationStats> {
    for (const s of this.#stats.values()) if (s.touched) yield s;
  }
}

/**
 * A metric whose samples are computed when the registry is scraped, from
 * totals kept elsewhere (`RequestMetrics`, a server's counters). The
 * registry renders any object with a name, help, type and `get()` (what its
 * own classes implement); its types name only those classes, hence the cast
 * where it is registered.
 */
class SampledMetric {
  readonly aggregator = "sum";
  constructor(readonly name: string, readonly help: string, readonly type: "counter" | "histogram", private readonly samples: () => Sample[]) {}

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() });
  }

  /** Totals kept elsewhere are not reset by the registry. */
  reset(): void {}
}

/**
 * An actor's metrics, in a registry of its own (several actors share one
 * process in tests and the simulation). Request metrics come from the
 * actor's routers; each actor adds its gauges, read at scrape time.
 *
 * @example
 *   const metrics = new ActorMetrics("shard", "s0");
 *   const router = new Router().observe(metrics.requests).on(ShardOps.stat, ...);
 *   metrics.gauge("pocket_shard_jobs", "Jobs the shard holds.", () => logic.jobCount);
 *   const text = await metrics.text();
 */
export class ActorMetrics {
  readonly registry = new Registry();
  readonly requests = new RequestMetrics();
  #process = false;

  constructor(readonly role: string, readonly id: string) {
    const info = new Gauge({ name: "pocket_actor_info", help: "The actor this registry belongs to (always 1).", labelNames: ["role", "id"], registers: [this.registry] });
    info.set({ role, id }, 1);
    this.#registerRequests();
    this.gauges("pocket_requests_inflight", "Requests being handled now, by transport.", ["transport"], () =>
      Object.entries(this.requests.inflight).map(([transport, n]) => [{ transport }, n]));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Node.js process metrics (CPU, memory, event loop lag, GC, handles), once per registry. */
  processMetrics(): void {
    if (this.#process) return;
    this.#process = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** A gauge read at scrape time. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /** A labelled gauge whose series are all set at scrape time: a series `read` no longer yields disappears. */
  gauges<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Iterable<readonly [Partial<Record<L, string | number>>, number]>): void {
    new Gauge<L>({
      name, help, labelNames, registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  }

  /** A counter of a total something else keeps (a server's bytes sent), read at scrape time. */
  total(name: string, help: string, read: () => number): void {
    this.#sampled(new SampledMetric(name, help, "counter", () => [{ labels: {}, value: read() }]));
  }

  /** A counter this actor bumps itself (decisions, effects); keep its label values to a fixed set. */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  /** The direct transport's connections, frames and bytes (`read` gives undefined while it is not listening). */
  tcpServer(read: () => TcpServerStats | undefined): void {
    const stat = (pick: (s: TcpServerStats) => number) => (): number => {
      const s = read();
      return s ? pick(s) : 0;
    };
    this.gauge("pocket_tcp_connections", "Direct-transport connections open now.", stat((s) => s.connections));
    this.gauge("pocket_tcp_inflight_frames", "Direct-transport requests being handled or waiting for their connection's window.", stat((s) => s.inflightFrames));
    this.gauge("pocket_tcp_inflight_bytes", "Bytes the direct transport holds now: partial frames and requests in flight.", stat((s) => s.inflightBytes));
    this.total("pocket_tcp_received_bytes_total", "Bytes read from direct-transport connections.", stat((s) => s.bytesIn));
    this.total("pocket_tcp_sent_bytes_total", "Bytes written to direct-transport connections.", stat((s) => s.bytesOut));
    this.total("pocket_tcp_protocol_errors_total", "Direct-transport connections closed for a protocol error, a failed handshake or a timeout.", stat((s) => s.protocolErrors));
  }

  #registerRequests(): void {
    const r = this.requests;
    const labels = (s: OperationStats): Labels => ({ operation: s.operation, transport: s.transport });
    this.#sampled(new SampledMetric("pocket_request_duration_seconds", "Time from dispatch to reply of requests handled, by operation and transport.", "histogram", () => {
      const out: Sample[] = [];
      for (const s of r.touched()) out.push(...histogramSamples("pocket_request_duration_seconds", labels(s), s));
      return out;
    }));
    const perOperation = (name: string, help: string, value: (s: OperationStats) => number): void => {
      this.#sampled(new SampledMetric(name, help, "counter", () => [...r.touched()].map((s) => ({ labels: labels(s), value: value(s) }))));
    };
    perOperation("pocket_request_bytes_total", "Request bytes (meta and payload) handled, by operation and transport.", (s) => s.requestBytes);
    perOperation("pocket_reply_bytes_total", "Reply bytes (meta and payload) of requests that succeeded, by operation and transport.", (s) => s.replyBytes);
    this.#sampled(new SampledMetric("pocket_request_errors_total", "Requests that failed or were refused, by operation, transport and error code.", "counter", () => {
      const out: Sample[] = [];
      for (const s of r.touched()) {
        s.errors.forEach((n, i) => { if (n > 0) out.push({ labels: { ...labels(s), code: errorCodes[i]! }, value: n }); });
      }
      return out;
    }));
  }

  #sampled(metric: SampledMetric): void {
    this.registry.registerMetric(metric as unknown as Metric);
  }
}

/** A histogram's series in the text format's shape: cumulative buckets, +Inf, sum and count. */
function histogramSamples(name: string, labels: Labels, s: OperationStats): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  latencyBucketsSeconds.forEach((le, i) => {
    cumulative += s.buckets[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
  });
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: s.count });
  out.push({ metricName: `${name}_sum`, labels, value: s.sumSeconds });
  out.push({ metricName: `${name}_count`, labels, value: s.count });
  return out;
}
