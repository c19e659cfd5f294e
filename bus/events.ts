import type { NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, StorageType, type JetStreamClient } from "@nats-io/jetstream";
import { encodeJson } from "./body";
import { errorFields, logger } from "../lib/log";
import { Subjects } from "./subjects";

/** The JetStream stream that keeps the controller's decisions and the inputs behind them. */
export const EventStream = {
  name: "POCKET_EVENTS",
  subjects: [Subjects.eventAll, Subjects.traceAll],
  /** Bounds: oldest messages go first past any of them. */
  maxMessages: 1_000_000,
  maxBytes: 512 * 1024 * 1024,
  maxAgeMs: 7 * 24 * 3600_000,
} as const;

/** Creates the event stream if missing (idempotent). Returns false when the server has no JetStream. */
export async function ensureEventStream(nc: NatsConnection): Promise<boolean> {
  let jsm;
  try {
    jsm = await jetstreamManager(nc, { timeout: 5_000 });
  } catch {
    return false;
  }
  const config = {
    name: EventStream.name,
    subjects: [...EventStream.subjects],
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_msgs: EventStream.maxMessages,
    max_bytes: EventStream.maxBytes,
    max_age: EventStream.maxAgeMs * 1_000_000,
  };
  try {
    await jsm.streams.info(EventStream.name);
    await jsm.streams.update(EventStream.name, config);
  } catch {
    await jsm.streams.add(config);
  }
  return true;
}

/**
 * Publishes events with JetStream acknowledgements, at most `inflightMax`
 * awaiting an ack; past that, events go out as plain publishes (the stream
 * still stores them; only the confirmation is skipped), so a slow server
 * never holds up a decision.
 */
export class EventPublisher {
  readonly #log = logger("events");
  readonly #js: JetStreamClient | undefined;
  #inflight = 0;
  unconfirmed = 0;

  constructor(private readonly nc: NatsConnection, withJetStream: boolean, private readonly inflightMax = 256) {
    this.#js = withJetStream ? jetstream(nc) : undefined;
  }

  /** A decision or lifecycle change, on `pocket.evt.<kind>`. */
  event(kind: string, body: Record<string, unknown>): void {
    this.#send(Subjects.event(kind), encodeJson({ ...body, kind }));
  }

  /**
   * An input to a decision, on `pocket.trace.<kind>`. Plain publishes (the
   * stream stores them): heartbeats and ticks come every second and must
   * not take the acknowledged window from decisions.
   */
  input(kind: string, body: Record<string, unknown>): void {
    if (!this.nc.isClosed()) this.nc.publish(Subjects.trace(kind), encodeJson({ ...body, kind }));
  }

  #send(subject: string, data: Uint8Array): void {
    if (this.nc.isClosed()) return;
    if (!this.#js || this.#inflight >= this.inflightMax) {
      this.nc.publish(subject, data);
      return;
    }
    this.#inflight++;
    this.#js.publish(subject, data).then(
      () => { this.#inflight--; },
      (e: unknown) => {
        this.#inflight--;
        // The stream did not confirm it (the message may still be stored): say so, once per hundred.
        if (this.unconfirmed++ % 100 === 0) this.#log.warn("event not confirmed by the stream", { subject, unconfirmed: this.unconfirmed, ...errorFields(e) });
      },
    );
  }
}

export interface ReadEventsOptions {
  /** Keep waiting for new events instead of stopping at the last one. */
  readonly follow?: boolean;
  /** Also the recorded inputs (`pocket.trace.>`). */
  readonly inputs?: boolean;
  /** Start after this stream sequence. */
  readonly afterSeq?: number;
  readonly signal?: AbortSignal;
}

/** Events from the stream in order, as parsed JSON with their stream sequence. */
export async function* readEvents(nc: NatsConnection, options: ReadEventsOptions = {}): AsyncGenerator<{ seq: number; subject: string; event: Record<string, unknown> }> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(EventStream.name);
  const last = info.state.last_seq;
  if (!options.follow && last <= (options.afterSeq ?? 0)) return;
  const js = jetstream(nc);
  const consumer = await js.consumers.get(EventStream.name, {
    // One subject filter (servers before 2.10 take no list): the stream holds only these two subject trees.
    ...(options.inputs ? {} : { filter_subjects: Subjects.eventAll }),
    ...(options.afterSeq ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.afterSeq + 1 } : { deliver_policy: DeliverPolicy.All }),
  });
  // Not following: stop at the last matching message there is now (the stream's last one may be an input).
  if (!options.follow && (await consumer.info()).num_pending === 0) return;
  const messages = await consumer.consume({ max_messages: 256 });
  const abort = (): void => { void messages.close(); };
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    for await (const m of messages) {
      yield { seq: m.seq, subject: m.subject, event: m.json<Record<string, unknown>>() };
      if (!options.follow && (m.info.pending === 0 || m.seq >= last)) break;
    }
  } finally {
    options.signal?.removeEventListener("abort", abort);
    await messages.close();
  }
}
