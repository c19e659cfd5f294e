import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../lib/log";
import type { Caller } from "./caller";
import type { Router } from "./router";

/** Something that stops when closed (a served prefix, a subscription). */
export interface Closable {
  close(): void;
}

export interface ServeOptions {
  /** Requests handled at once; past it, callers get `Busy` at once instead of queueing without bound. */
  readonly inflightMax?: number;
  /**
   * Subjects are `<prefix>.<jobId>.<operation>`: the job named by the subject
   * (which only that job's lambdas may publish to) is handed to handlers as
   * `ctx.jobId`, and they refuse a token of another job.
   */
  readonly jobScoped?: boolean;
}

export interface SubscribeOptions<S extends TSchema> {
  /**
   * The subject a message with this body must arrive on (each component may
   * publish only on its own subjects), so a body naming another sender is a
   * spoof and is dropped.
   */
  readonly subjectOf?: (value: Static<S>) => string;
}

/**
 * What an actor's shell needs of the message bus: serve operations, call
 * them, publish and follow reports. `NatsBus` is the real one (nats-server
 * enforces who may do what); the simulation has its own, with loss, delay,
 * reordering and partitions drawn from a seed.
 */
export interface Bus {
  /** Serves a router's operations on `<prefix>.<operation>` (`<prefix>.<jobId>.<operation>` when job-scoped). */
  serve(prefix: string, router: Router, options?: ServeOptions): Closable;
  /** Calls operations of the service at `prefix`; `timeoutMs` is the default deadline per call. */
  caller(prefix: string, timeoutMs?: number): Caller;
  /** Publishes one JSON message (a heartbeat, a report). */
  publish(subject: string, value: unknown): void;
  /** Follows published JSON messages matching `schema` (and their own subject); drops and counts the rest. */
  subscribe<S extends TSchema>(subject: string, schema: S, log: Logger, onMessage: (value: Static<S>) => void, options?: SubscribeOptions<S>): Closable;
  /** Resolves once the server has every subscription made so far (a service is reachable only then). */
  flush(): Promise<void>;
  /** Stops everything served and followed on this bus connection, after in-flight replies go out. */
  drain(): Promise<void>;
}

/** Where decisions and the inputs behind them are recorded (the event stream, or memory in the simulation). */
export interface EventSink {
  /** A decision or lifecycle change. */
  event(kind: string, body: Record<string, unknown>): void;
  /** An input to a decision. */
  input(kind: string, body: Record<string, unknown>): void;
}
