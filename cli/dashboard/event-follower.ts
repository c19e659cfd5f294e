import type { NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { EventStream } from "../../bus/events";
import { Subjects } from "../../bus/subjects";
import { errorFields, logger } from "../../lib/log";

/** One decision or lifecycle change from the controller's event stream. */
export interface FeedEvent {
  readonly seq: number;
  readonly subject: string;
  readonly event: Record<string, unknown>;
}

export interface FollowOptions {
  /** Decisions published at or after this time are delivered first (the page's look back). */
  readonly sinceMs: number;
  /** Wait before following again after the stream or the connection failed. */
  readonly retryDelayMs: number;
  readonly signal: AbortSignal;
  onEvent(e: FeedEvent): void;
}

/** Messages the consumer asks for at a time. */
const batchMax = 256;

/**
 * Follows the controller's decisions (`pocket.evt.>`) on its JetStream
 * stream until `signal` aborts: first those since `sinceMs`, then each as it
 * is published. When the stream is missing (the controller has not started
 * yet) or the connection fails, it waits and resumes after the last one
 * delivered, so nothing is delivered twice.
 */
export async function followDecisions(nc: NatsConnection, options: FollowOptions): Promise<void> {
  const log = logger("dashboard");
  let afterSeq = 0;
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      await consume(nc, afterSeq, options, (e) => {
        afterSeq = e.seq;
        if (failures > 0) log.info("following the event stream again", { failures });
        failures = 0;
        options.onEvent(e);
      });
    } catch (e) {
      // Said once per run of failures: the stream may be missing for as long as the controller is.
      if (failures++ === 0) log.warn("cannot follow the event stream; retrying", { stream: EventStream.name, ...errorFields(e) });
    }
    await pause(options.retryDelayMs, options.signal);
  }
}

/** One ordered consumer from where the last one stopped, until its messages end or `signal` aborts. */
async function consume(nc: NatsConnection, afterSeq: number, options: FollowOptions, deliver: (e: FeedEvent) => void): Promise<void> {
  const consumer = await jetstream(nc).consumers.get(EventStream.name, {
    filter_subjects: Subjects.eventAll,
    ...(afterSeq > 0
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSeq + 1 }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(options.sinceMs).toISOString() }),
  });
  if (options.signal.aborted) return;
  const messages = await consumer.consume({ max_messages: batchMax });
  const abort = (): void => { void messages.close(); };
  options.signal.addEventListener("abort", abort, { once: true });
  try {
    for await (const m of messages) {
      const event = parseEvent(m.data);
      if (event) deliver({ seq: m.seq, subject: m.subject, event });
    }
  } finally {
    options.signal.removeEventListener("abort", abort);
    await messages.close();
  }
}

/** An event body as the controller publishes it (a JSON object), or undefined for anything else. */
function parseEvent(data: Uint8Array): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(data));
  } catch (e) {
    logger("dashboard").warn("an event on the stream is not JSON; skipped", errorFields(e));
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
