import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../lib/log";
import { decodeJson } from "./body";
import type { SubscribeOptions } from "./bus";
import { checkerFor, describeViolation } from "./router";

/** Drop notices per subscription: at most one line per this interval, with how many were dropped since. */
const dropLogIntervalMs = 10_000;

/**
 * Subscribes to published JSON messages (heartbeats, reports), handing on
 * only those that match `schema` (and arrive on their own subject); anything
 * else is dropped and counted, and logged at most once per ten seconds.
 */
export function subscribeValidated<S extends TSchema>(
  nc: NatsConnection, subject: string, schema: S, log: Logger, onMessage: (value: Static<S>) => void,
  options: SubscribeOptions<S> = {},
): Subscription {
  const check = checkerFor(schema);
  const drops = new DropLog(log, subject);
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return; // the subscription is closing
      let value: unknown;
      try {
        value = decodeJson(msg.data);
      } catch {
        drops.note("not JSON", msg.subject);
        return;
      }
      if (!check.Check(value)) {
        drops.note(describeViolation(check, value), msg.subject);
        return;
      }
      if (options.subjectOf && options.subjectOf(value) !== msg.subject) {
        drops.note("its body names another sender than its subject", msg.subject);
        return;
      }
      onMessage(value);
    },
  });
}

/** Counts dropped messages and logs them at most once per interval. */
export class DropLog {
  #dropped = 0;
  #lastLogMs = -Infinity;

  constructor(private readonly log: Logger, private readonly what: string, private readonly intervalMs = dropLogIntervalMs) {}

  get dropped(): number { return this.#dropped; }

  note(reason: string, subject: string): void {
    this.#dropped++;
    const now = Date.now();
    if (now - this.#lastLogMs < this.intervalMs) return;
    this.#lastLogMs = now;
    this.log.warn("dropped messages", { on: this.what, subject, reason, droppedTotal: this.#dropped });
  }
}
