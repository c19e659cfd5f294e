import type { NatsConnection } from "@nats-io/transport-node";
import { errorFields, logger } from "../../lib/log";

/** What keeps an actor from being ready; each is a name spelled here, so the set of reasons is bounded. */
export const NotReady = {
  /** The actor has not finished starting (connecting, subscribing, listening). */
  Starting: "starting",
  /** Its NATS connection is down, or its subscriptions are not yet back on the server. */
  Nats: "nats",
  Stopping: "stopping",
} as const;
export type NotReady = (typeof NotReady)[keyof typeof NotReady];

/**
 * Whether an actor is ready to serve, and if not, why: ready once nothing
 * blocks it. An actor starts blocked by `starting`, clears it when it
 * serves, and is blocked again while NATS is down and when it stops.
 *
 * @example
 *   const r = new Readiness();
 *   r.block(NotReady.Nats, "disconnected from nats://127.0.0.1:4222");
 *   r.reasons; // ["starting: the actor is starting", "nats: disconnected from ..."]
 */
export class Readiness {
  readonly #blocked = new Map<NotReady, string>([[NotReady.Starting, "the actor is starting"]]);

  get ready(): boolean {
    return this.#blocked.size === 0;
  }

  /** One line per reason the actor is not ready. */
  get reasons(): string[] {
    return [...this.#blocked].map(([what, why]) => `${what}: ${why}`);
  }

  block(what: NotReady, why: string): void {
    this.#blocked.set(what, why);
  }

  clear(what: NotReady): void {
    this.#blocked.delete(what);
  }
}

/** What following a connection reports besides readiness (metrics). */
export interface NatsStatusCounts {
  disconnected(): void;
  reconnected(): void;
}

/**
 * Follows a NATS connection's status until it closes: not ready from a
 * disconnect until the client has reconnected and the server has answered a
 * flush (the client sends its subscriptions again first, so they are back).
 */
export function followNats(nc: NatsConnection, readiness: Readiness, counts: NatsStatusCounts): void {
  const log = logger("readiness");
  let generation = 0;
  const follow = async (): Promise<void> => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        generation++;
        counts.disconnected();
        readiness.block(NotReady.Nats, `disconnected from ${s.server}`);
      } else if (s.type === "reconnect") {
        const mine = ++generation;
        counts.reconnected();
        readiness.block(NotReady.Nats, `reconnected to ${s.server}; subscriptions not yet confirmed`);
        nc.flush().then(
          () => { if (generation === mine) readiness.clear(NotReady.Nats); },
          (e: unknown) => log.warn("flush after reconnect failed", errorFields(e)),
        );
      }
    }
    readiness.block(NotReady.Nats, "the connection is closed");
  };
  follow().catch((e: unknown) => {
    readiness.block(NotReady.Nats, "its status could not be followed");
    log.error("NATS status not followed", errorFields(e));
  });
}
