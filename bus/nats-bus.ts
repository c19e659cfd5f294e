import type { NatsConnection } from "@nats-io/transport-node";
import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../lib/log";
import { encodeJson } from "./body";
import type { Bus, Closable, ServeOptions, SubscribeOptions } from "./bus";
import type { Caller } from "./caller";
import { NatsCaller, serveOnNats } from "./nats-rpc";
import type { Router } from "./router";
import { subscribeValidated } from "./subscribe";

/** The bus over one NATS connection: what the connection's credential allows, nats-server enforces. */
export class NatsBus implements Bus {
  constructor(readonly nc: NatsConnection, private readonly defaultTimeoutMs = 10_000) {}

  serve(prefix: string, router: Router, options: ServeOptions = {}): Closable {
    const sub = serveOnNats(this.nc, prefix, router, options);
    return { close: () => sub.unsubscribe() };
  }

  caller(prefix: string, timeoutMs = this.defaultTimeoutMs): Caller {
    return new NatsCaller(this.nc, prefix, timeoutMs);
  }

  publish(subject: string, value: unknown): void {
    if (!this.nc.isClosed()) this.nc.publish(subject, encodeJson(value));
  }

  subscribe<S extends TSchema>(subject: string, schema: S, log: Logger, onMessage: (value: Static<S>) => void, options: SubscribeOptions<S> = {}): Closable {
    const sub = subscribeValidated(this.nc, subject, schema, log, onMessage, options);
    return { close: () => sub.unsubscribe() };
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async drain(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}
