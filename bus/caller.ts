import type { Operation, ReplyOf, RequestOf } from "../schemas/operation";

export interface CallOptions {
  /** Bytes sent with the request (operations whose payload direction is `request`). */
  readonly payload?: Uint8Array;
  /** How long to wait for the reply. */
  readonly timeoutMs?: number;
}

export interface CallResult<O extends Operation> {
  readonly reply: ReplyOf<O>;
  readonly payload: Uint8Array | undefined;
  /** The payload's buffer is this reply's own (a large frame reassembled for it): the caller may keep it without copying. */
  readonly payloadOwned?: boolean;
}

/**
 * The client side of a transport: sends one operation to one service and
 * returns its reply, or throws the typed Pocket error the service replied with.
 */
export interface Caller {
  /** Calls `op` on the service this caller is bound to. */
  call<O extends Operation>(op: O, request: RequestOf<O>, options?: CallOptions): Promise<CallResult<O>>;
}
