import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { TSchema } from "@sinclair/typebox";
import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";
import { PayloadDirection } from "../schemas/operation";
import { ErrorCode, InvalidArgumentError, toWireError } from "../schemas/errors";
import { decodeRequestMeta, encodeReplyMeta } from "./body";
import { isBinaryMeta } from "../schemas/codec";

/** Which transport a request came in on. Handlers should not care; logs may. */
export const Transport = { Nats: "nats", Tcp: "tcp" } as const;
export type Transport = (typeof Transport)[keyof typeof Transport];

export interface RequestContext {
  readonly transport: Transport;
  /** Request payload bytes, for operations that carry one. */
  readonly payload: Uint8Array | undefined;
  /**
   * The job the bus addressed this request to (NATS subjects of a job's
   * lambdas name it, and only they may publish there); a handler that takes a
   * job token refuses one for another job. Undefined on the direct transport.
   */
  readonly jobId?: string;
  /** The payload's buffer is the request's own (see Frame.owned): the handler may keep it rather than copy it. */
  readonly payloadOwned?: boolean;
}

/** A reply with bytes attached (operations whose payload direction is `reply`). */
export class WithPayload<R> {
  /**
   * `release`: the payload is a view of memory its owner will reuse; it is
   * called once, when the payload has been sent or copied (or dropped).
   */
  constructor(readonly reply: R, readonly payload: Uint8Array, readonly release?: () => void) {}
}

export type Handler<O extends Operation> = (
  request: RequestOf<O>,
  ctx: RequestContext,
) => Promise<ReplyOf<O> | WithPayload<ReplyOf<O>>> | ReplyOf<O> | WithPayload<ReplyOf<O>>;

export type DispatchResult =
  /** `release`, when given, must be called once the payload has been sent or copied (see WithPayload). */
  | { readonly ok: true; readonly meta: Uint8Array; readonly payload: Uint8Array | undefined; readonly release?: (() => void) | undefined }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** What a transport knows of a request besides its bytes. */
export interface DispatchExtras {
  /** The job the bus addressed the request to (a job's NATS subjects). */
  readonly jobId?: string;
  /** The payload's buffer is the request's own (see RequestContext.payloadOwned). */
  readonly payloadOwned?: boolean;
  /**
   * The token the connection authenticated with (the direct transport's
   * session): a request that names no token is that job's.
   */
  readonly sessionToken?: string;
}

/**
 * Watches the requests a router dispatches (an actor's metrics). `probe` is
 * asked once per operation and transport when the router learns of either;
 * the probes it hands out are called on every request, so they must be cheap.
 */
export interface DispatchObserver {
  /** The probe of one operation (`undefined`: any name this router does not serve) on one transport. */
  probe(operation: string | undefined, transport: Transport): DispatchProbe;
}

/** Counts one operation's requests on one transport. */
export interface DispatchProbe {
  /** A request starts; returns its start time, for `end`. */
  begin(): number;
  /** The request that began at `startedMs` ended with `result`; its meta and payload were `requestBytes` long. */
  end(startedMs: number, requestBytes: number, result: DispatchResult): void;
  /** A transport refused a request before dispatching it (e.g. `Busy`). */
  refused(code: ErrorCode): void;
}

type Probes = Readonly<Record<Transport, DispatchProbe>>;

interface Route {
  readonly op: Operation;
  /** The operation's request has a `token` field (a session fills it in when a request leaves it out). */
  readonly takesToken: boolean;
  readonly check: TypeCheck<TSchema>;
  readonly handler: Handler<Operation>;
  /** Bound once, when an observer is set. */
  probes: Probes | undefined;
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();
/** Compiled validator for a schema, built once per schema. */
export function checkerFor<S extends TSchema>(schema: S): TypeCheck<S> {
  let check = compiled.get(schema) as TypeCheck<S> | undefined;
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** First schema violation, as a short message for the caller. */
export function describeViolation(check: TypeCheck<TSchema>, value: unknown): string {
  const first = check.Errors(value).First();
  if (!first) return "does not match the schema";
  return `${first.path || "/"}: ${first.message}`;
}

/**
 * Maps operation names to handlers. Both transports hand every request to
 * `dispatch`, which validates it against the operation's schema first.
 */
export class Router {
  readonly #routes = new Map<string, Route>();
  #observer: DispatchObserver | undefined;
  /** Probes for names this router does not serve (bound once, so remote names never become labels). */
  #unknown: Probes | undefined;

  /**
   * `scope` checks a request the bus addressed to one job (`ctx.jobId`), before
   * its handler runs: e.g. that the request's token is that job's.
   */
  constructor(private readonly scope?: (request: unknown, jobId: string) => void) {}

  on<O extends Operation>(op: O, handler: Handler<O>): this {
    if (this.#routes.has(op.name)) throw new Error(`operation ${op.name} registered twice`);
    const takesToken = (op.request as { properties?: Record<string, unknown> }).properties?.["token"] !== undefined;
    const probes = this.#observer ? probesOf(this.#observer, op.name) : undefined;
    this.#routes.set(op.name, { op, check: checkerFor(op.request), handler: handler as unknown as Handler<Operation>, takesToken, probes });
    return this;
  }

  /** Reports every request, from now on, to `observer` (one probe per operation and transport, bound here). */
  observe(observer: DispatchObserver): this {
    this.#observer = observer;
    this.#unknown = probesOf(observer, undefined);
    for (const route of this.#routes.values()) route.probes = probesOf(observer, route.op.name);
    return this;
  }

  /** Counts a request a transport refused before dispatching it (e.g. `Busy` past its in-flight limit). */
  refused(name: string, transport: Transport, code: ErrorCode): void {
    (this.#routes.get(name)?.probes ?? this.#unknown)?.[transport].refused(code);
  }

  has(name: string): boolean {
    return this.#routes.has(name);
  }

  get names(): string[] {
    return [...this.#routes.keys()];
  }

  /** Validates and runs one request. Never throws: failures become error results. */
  async dispatch(name: string, meta: Uint8Array, payload: Uint8Array | undefined, transport: Transport, extras: DispatchExtras = {}): Promise<DispatchResult> {
    const { jobId, payloadOwned = false, sessionToken } = extras;
    const route = this.#routes.get(name);
    const probe = (route ? route.probes : this.#unknown)?.[transport];
    const startedMs = probe ? probe.begin() : 0;
    let result: DispatchResult;
    try {
      if (!route) throw new InvalidArgumentError(`unknown operation ${JSON.stringify(name.slice(0, 64))}`);
      const binary = isBinaryMeta(meta);
      const request = decodeRequestMeta(name, meta);
      if (sessionToken !== undefined && route.takesToken && typeof request === "object" && request !== null && !("token" in request)) {
        (request as { token?: string }).token = sessionToken;
      }
      if (!route.check.Check(request)) {
        throw new InvalidArgumentError(`${name}: ${describeViolation(route.check, request)}`);
      }
      if (payload !== undefined && route.op.payload !== PayloadDirection.Request) {
        throw new InvalidArgumentError(`${name} takes no payload`);
      }
      if (jobId !== undefined) this.scope?.(request, jobId);
      const ctx: RequestContext = jobId === undefined ? { transport, payload, payloadOwned } : { transport, payload, jobId, payloadOwned };
      const out = await route.handler(request, ctx);
      if (out instanceof WithPayload) {
        try {
          result = { ok: true, meta: encodeReplyMeta(name, binary, out.reply), payload: out.payload, release: out.release };
        } catch (e) {
          out.release?.();
          throw e;
        }
      } else {
        result = { ok: true, meta: encodeReplyMeta(name, binary, out), payload: undefined };
      }
    } catch (e) {
      result = { ok: false, ...toWireError(e) };
    }
    probe?.end(startedMs, meta.byteLength + (payload?.byteLength ?? 0), result);
    return result;
  }
}

function probesOf(observer: DispatchObserver, operation: string | undefined): Probes {
  return { [Transport.Nats]: observer.probe(operation, Transport.Nats), [Transport.Tcp]: observer.probe(operation, Transport.Tcp) };
}
