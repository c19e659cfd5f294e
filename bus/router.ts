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
  constructor(readonly reply: R, readonly payload: Uint8Array) {}
}

export type Handler<O extends Operation> = (
  request: RequestOf<O>,
  ctx: RequestContext,
) => Promise<ReplyOf<O> | WithPayload<ReplyOf<O>>> | ReplyOf<O> | WithPayload<ReplyOf<O>>;

export type DispatchResult =
  | { readonly ok: true; readonly meta: Uint8Array; readonly payload: Uint8Array | undefined }
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

interface Route {
  readonly op: Operation;
  /** The operation's request has a `token` field (a session fills it in when a request leaves it out). */
  readonly takesToken: boolean;
  readonly check: TypeCheck<TSchema>;
  readonly handler: Handler<Operation>;
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

  /**
   * `scope` checks a request the bus addressed to one job (`ctx.jobId`), before
   * its handler runs: e.g. that the request's token is that job's.
   */
  constructor(private readonly scope?: (request: unknown, jobId: string) => void) {}

  on<O extends Operation>(op: O, handler: Handler<O>): this {
    if (this.#routes.has(op.name)) throw new Error(`operation ${op.name} registered twice`);
    const takesToken = (op.request as { properties?: Record<string, unknown> }).properties?.["token"] !== undefined;
    this.#routes.set(op.name, { op, check: checkerFor(op.request), handler: handler as unknown as Handler<Operation>, takesToken });
    return this;
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
    try {
      const route = this.#routes.get(name);
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
      if (out instanceof WithPayload) return { ok: true, meta: encodeReplyMeta(name, binary, out.reply), payload: out.payload };
      return { ok: true, meta: encodeReplyMeta(name, binary, out), payload: undefined };
    } catch (e) {
      return { ok: false, ...toWireError(e) };
    }
  }
}
