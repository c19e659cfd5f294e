import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../actors/runtime/log";
import { decodeJson } from "./body";
import { checkerFor, describeViolation } from "./router";

/**
 * Subscribes to published JSON messages (heartbeats, events), handing on only
 * those that match `schema`; anything else is logged and dropped.
 */
export function subscribeValidated<S extends TSchema>(
  nc: NatsConnection, subject: string, schema: S, log: Logger, onMessage: (value: Static<S>) => void,
): Subscription {
  const check = checkerFor(schema);
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return; // the subscription is closing
      let value: unknown;
      try {
        value = decodeJson(msg.data);
      } catch {
        log.warn("dropped a message that is not JSON", { subject: msg.subject });
        return;
      }
      if (!check.Check(value)) {
        log.warn("dropped a message that does not match its schema", { subject: msg.subject, violation: describeViolation(check, value) });
        return;
      }
      onMessage(value);
    },
  });
}
