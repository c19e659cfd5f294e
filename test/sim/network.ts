import type { Static, TSchema } from "@sinclair/typebox";
import { errorFromWire, NodeUnavailableError, TimeoutError } from "../../schemas/errors";
import type { Operation, RequestOf } from "../../schemas/operation";
import type { ManualClock } from "../../lib/clock";
import type { Logger } from "../../lib/log";
import type { Prng } from "../../lib/prng";
import { decodeJson, decodeReplyMeta, encodeJson, encodeRequestMeta } from "../../bus/body";
import type { Bus, Closable, ServeOptions, SubscribeOptions } from "../../bus/bus";
import type { Caller, CallOptions, CallResult } from "../../bus/caller";
import { checkerFor, Transport, type Router } from "../../bus/router";

/** How the simulated network misbehaves now; the run changes it as its faults come and go. */
export interface NetworkFaults {
  /** Chance that any one message is lost. */
  lossRate: number;
  /** Every message takes between these (uniformly drawn: messages overtake each other). */
  delayMinMs: number;
  delayMaxMs: number;
  /** Hosts cut off from everyone. */
  readonly isolated: Set<string>;
  /** Extra delay on every message to or from a host (a slow machine). */
  readonly slow: Map<string, number>;
}

interface Service {
  readonly bus: SimBus;
  readonly prefix: string;
  readonly router: Router;
  readonly jobScoped: boolean;
  open: boolean;
}

interface Subscriber {
  readonly bus: SimBus;
  readonly pattern: string[];
  readonly deliver: (subject: string, data: Uint8Array) => void;
  open: boolean;
}

/**
 * One process's message bus over a network of simulated hosts: requests,
 * replies and published messages are timers on the shared ManualClock,
 * delayed, dropped and reordered as the seed and the current faults say.
 * Nothing here touches a socket or the wall clock.
 */
export class SimNetwork {
  readonly faults: NetworkFaults = { lossRate: 0, delayMinMs: 0, delayMaxMs: 2, isolated: new Set(), slow: new Map() };
  readonly #services: Service[] = [];
  readonly #subscribers: Subscriber[] = [];
  /** Messages sent, dropped (loss, isolation, closed receiver). */
  readonly stats = { sent: 0, dropped: 0 };

  constructor(readonly clock: ManualClock, private readonly rng: Prng) {}

  /** A bus for a process on `host`. */
  bus(host: string): SimBus {
    return new SimBus(this, host);
  }

  /** The longest any message can take now (for the oracle: how long an unanswered request may still land). */
  get delayBoundMs(): number {
    let slow = 0;
    for (const ms of this.faults.slow.values()) slow = Math.max(slow, ms);
    return this.faults.delayMaxMs + 2 * slow;
  }

  /** Sends one message from `from` to `to`: runs `arrive` after the network's delay, unless it is lost. */
  send(from: string, to: string, arrive: () => void): void {
    this.stats.sent++;
    const f = this.faults;
    if (f.isolated.has(from) || f.isolated.has(to) || (f.lossRate > 0 && this.rng.chance(f.lossRate))) {
      this.stats.dropped++;
      return;
    }
    const delay = f.delayMinMs + this.rng.below(f.delayMaxMs - f.delayMinMs + 1) + (f.slow.get(from) ?? 0) + (f.slow.get(to) ?? 0);
    this.clock.after(delay, arrive);
  }

  serve(s: Service): Closable {
    this.#services.push(s);
    return { close: () => { s.open = false; this.#prune(); } };
  }

  subscribe(s: Subscriber): Closable {
    this.#subscribers.push(s);
    return { close: () => { s.open = false; this.#prune(); } };
  }

  /** The open service for a request subject, with the operation name and the job the subject names. */
  route(subject: string): { service: Service; name: string; jobId: string | undefined } | undefined {
    for (const s of this.#services) {
      if (!s.open || !s.bus.open || !subject.startsWith(`${s.prefix}.`)) continue;
      const rest = subject.slice(s.prefix.length + 1);
      if (!s.jobScoped) return { service: s, name: rest, jobId: undefined };
      const dot = rest.indexOf(".");
      if (dot > 0) return { service: s, name: rest.slice(dot + 1), jobId: rest.slice(0, dot) };
    }
    return undefined;
  }

  publish(from: SimBus, subject: string, data: Uint8Array): void {
    const parts = subject.split(".");
    for (const s of this.#subscribers) {
      if (!s.open || !matches(s.pattern, parts)) continue;
      this.send(from.host, s.bus.host, () => { if (s.open && s.bus.open) s.deliver(subject, data); });
    }
  }

  #prune(): void {
    for (const list of [this.#services, this.#subscribers] as Array<Array<{ open: boolean; bus: SimBus }>>) {
      for (let i = list.length - 1; i >= 0; i--) if (!list[i]!.open || !list[i]!.bus.open) list.splice(i, 1);
    }
  }

  /** Closes every bus of a process that died: nothing it served answers, nothing it followed arrives. */
  kill(bus: SimBus): void {
    bus.open = false;
    this.#prune();
  }
}

/** A NATS subject pattern (`*` one token, `>` the rest) against a subject's tokens. */
function matches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === ">") return subject.length > i;
    if (i >= subject.length || (p !== "*" && p !== subject[i])) return false;
  }
  return pattern.length === subject.length;
}

/** One process's bus on the simulated network (implements the actors' Bus). */
export class SimBus implements Bus {
  open = true;

  constructor(readonly net: SimNetwork, readonly host: string) {}

  serve(prefix: string, router: Router, options: ServeOptions = {}): Closable {
    return this.net.serve({ bus: this, prefix, router, jobScoped: options.jobScoped ?? false, open: true });
  }

  caller(prefix: string, timeoutMs = 10_000): Caller {
    return { call: (op, request, options) => this.#call(`${prefix}.${op.name}`, op, request, options?.timeoutMs ?? timeoutMs, options) };
  }

  publish(subject: string, value: unknown): void {
    if (this.open) this.net.publish(this, subject, encodeJson(value));
  }

  subscribe<S extends TSchema>(subject: string, schema: S, _log: Logger, onMessage: (value: Static<S>) => void, options: SubscribeOptions<S> = {}): Closable {
    const check = checkerFor(schema);
    return this.net.subscribe({
      bus: this, pattern: subject.split("."), open: true,
      deliver: (actual, data) => {
        const value = decodeJson(data);
        if (!check.Check(value)) return;
        if (options.subjectOf && options.subjectOf(value) !== actual) return;
        onMessage(value);
      },
    });
  }

  async flush(): Promise<void> {
    // Subscriptions on the simulated network take effect at once.
  }

  async drain(): Promise<void> {
    this.net.kill(this);
  }

  /**
   * A request and its reply, each a message on the network; a lost one
   * leaves the caller to its deadline (TimeoutError), as on NATS. No
   * service at all is NodeUnavailable at once, as NATS's no-responders.
   */
  #call<O extends Operation>(subject: string, _op: O, request: RequestOf<O>, timeoutMs: number, options: CallOptions | undefined): Promise<CallResult<O>> {
    const net = this.net;
    const meta = encodeRequestMeta(_op.name, request);
    const payload = options?.payload === undefined ? undefined : Buffer.from(options.payload);
    return new Promise<CallResult<O>>((resolve, reject) => {
      let settled = false;
      const deadline = net.clock.after(timeoutMs, () => settle(() => reject(new TimeoutError(`no reply on ${subject} within ${timeoutMs} ms`))));
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        deadline.cancel();
        fn();
      };
      if (!this.open) return settle(() => reject(new NodeUnavailableError(`the bus of ${this.host} is closed`)));
      const target = net.route(subject);
      if (!target) return settle(() => reject(new NodeUnavailableError(`no service answers on ${subject}`)));
      const { service, name, jobId } = target;
      net.send(this.host, service.bus.host, () => {
        if (!service.open || !service.bus.open) return;
        void service.router.dispatch(name, meta, payload, Transport.Nats, jobId === undefined ? {} : { jobId }).then((result) => {
          // The reply travels as a copy, as over NATS: the payload is let go at once.
          const copy = result.ok && result.payload !== undefined ? Buffer.from(result.payload) : undefined;
          if (result.ok) result.release?.();
          if (!service.bus.open) return;
          net.send(service.bus.host, this.host, () => {
            if (!this.open) return;
            if (!result.ok) return settle(() => reject(errorFromWire(result.code, result.message)));
            const reply = decodeReplyMeta(_op.name, result.meta) as CallResult<O>["reply"];
            settle(() => resolve({ reply, payload: copy }));
          });
        });
      });
    });
  }
}
