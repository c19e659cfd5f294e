import type { Static, TSchema } from "@sinclair/typebox";
import type { ErrorCode } from "./errors";

/** Where an operation's binary payload travels, besides its JSON request and reply. */
export const PayloadDirection = { None: "none", Request: "request", Reply: "reply" } as const;
export type PayloadDirection = (typeof PayloadDirection)[keyof typeof PayloadDirection];

/**
 * One operation, declared once: both transports (NATS and direct TCP) and
 * every client dispatch from this declaration.
 *
 * @example
 *   const op = defineOperation({ name: "object.stat", request: T.Object({...}), reply: ..., errors: ["NotFound"] });
 */
export interface Operation<N extends string = string, Req extends TSchema = TSchema, Rep extends TSchema = TSchema> {
  readonly name: N;
  readonly summary: string;
  readonly request: Req;
  readonly reply: Rep;
  readonly errors: readonly ErrorCode[];
  readonly payload: PayloadDirection;
}

export type RequestOf<O> = O extends Operation<string, infer Req, TSchema> ? Static<Req> : never;
export type ReplyOf<O> = O extends Operation<string, TSchema, infer Rep> ? Static<Rep> : never;

export function defineOperation<N extends string, Req extends TSchema, Rep extends TSchema>(
  op: Omit<Operation<N, Req, Rep>, "payload"> & { payload?: PayloadDirection },
): Operation<N, Req, Rep> {
  return Object.freeze({ ...op, payload: op.payload ?? PayloadDirection.None });
}
