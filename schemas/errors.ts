/**
 * Every failure a Pocket operation can report, as one constant map.
 * Codes travel on the wire (NATS reply headers, TCP error frames) and are
 * rebuilt into the same class on the client.
 *
 * @example
 *   try { await job.get("missing") } catch (e) { if (isPocketError(e, ErrorCode.NotFound)) ... }
 */
export const ErrorCode = {
  NotFound: "NotFound",
  AlreadyExists: "AlreadyExists",
  Unauthorized: "Unauthorized",
  CapacityExceeded: "CapacityExceeded",
  NodeUnavailable: "NodeUnavailable",
  InvalidArgument: "InvalidArgument",
  NotEmpty: "NotEmpty",
  TooLarge: "TooLarge",
  UnknownJob: "UnknownJob",
  Timeout: "Timeout",
  Busy: "Busy",
  Internal: "Internal",
  /** Bytes do not match their checksum: corrupted in a store or on the way. Never returned as data. */
  Integrity: "Integrity",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What a caller may do about an error: nothing, the same request again after a pause, or read the object's layout again. */
export const ErrorRetry = {
  /** Trying again gives the same answer: the request or the state must change first. */
  No: "no",
  /** The same request again, after a pause (backing off), may succeed. */
  Backoff: "backoff",
  /** During a read: the layout may be stale; ask the shard for it again (object.get / object.lookup) and read anew. Else as `no`. */
  Reread: "reread",
} as const;
export type ErrorRetry = (typeof ErrorRetry)[keyof typeof ErrorRetry];

/** Each code's meaning to a caller, and whether trying again can help: the wire contract's table. */
export const ErrorInfo: Readonly<Record<ErrorCode, { readonly retry: ErrorRetry; readonly meaning: string }>> = {
  NotFound: {
    retry: ErrorRetry.Reread,
    meaning: "No object, directory, pending write or extent by that name. An extent not found during a read means the object was replaced or deleted after its layout was read (extents are never reused): read the layout again (the SDK does, 3 times at most).",
  },
  AlreadyExists: { retry: ErrorRetry.No, meaning: "createOnly and the object exists; mkdir of a directory that exists; an extent written (or freed) before." },
  Unauthorized: {
    retry: ErrorRetry.No,
    meaning: "No token, a token that is malformed, expired or for another job; a missing, forged or expired grant; a bus credential that may not send there. A write reserved ahead whose grant has expired gives it too: put the usual way (object.create).",
  },
  CapacityExceeded: { retry: ErrorRetry.Backoff, meaning: "No node of the job has room (or the shard's inline bytes are full): later, once data is deleted or the controller has added nodes." },
  NodeUnavailable: {
    retry: ErrorRetry.Reread,
    meaning: "Nothing answers: no responder on the subject, a connection refused or lost, a node not heard from. For a read, read the layout again (the node may have been drained and its extents moved); otherwise try again after a pause.",
  },
  InvalidArgument: { retry: ErrorRetry.No, meaning: "The request breaks the contract: schema, path rules, ranges, protocol (frames, chunks, receipts missing at commit)." },
  NotEmpty: { retry: ErrorRetry.No, meaning: "Delete of a directory that has entries, without `recursive`." },
  TooLarge: { retry: ErrorRetry.No, meaning: "Over a size limit: an inline put over inlineBytesMax, an extent over extentBytesMax, a frame or chunked body over its limit." },
  UnknownJob: { retry: ErrorRetry.No, meaning: "The job has ended or expired (or its shard does not hold it): everything it stored is gone." },
  Timeout: {
    retry: ErrorRetry.Backoff,
    meaning: "No reply in time. The operation may or may not have taken effect: a put can be repeated (it overwrites; with createOnly it may then meet AlreadyExists).",
  },
  Busy: { retry: ErrorRetry.Backoff, meaning: "A bound is reached (requests in flight, chunked streams, pending writes; it is answered only before an operation runs): try again after a pause." },
  Internal: { retry: ErrorRetry.No, meaning: "A fault in the server or in a reply it sent (a bug): report it." },
  Integrity: {
    retry: ErrorRetry.Reread,
    meaning: "Bytes do not match their CRC-32 (on write: nothing was stored; on read: damaged in a store or on the way). Never returned as data. A reader tries once more with a fresh layout, then reports it.",
  },
};

const codes = new Set<string>(Object.values(ErrorCode));
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && codes.has(value);
}

/** Base of all Pocket errors: `code` is the wire code, `name` the class name. */
export class PocketError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `${code}Error`;
  }
}

export class NotFoundError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.NotFound, message, options); }
}
export class AlreadyExistsError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.AlreadyExists, message, options); }
}
export class UnauthorizedError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.Unauthorized, message, options); }
}
export class CapacityExceededError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.CapacityExceeded, message, options); }
}
export class NodeUnavailableError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.NodeUnavailable, message, options); }
}
export class InvalidArgumentError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.InvalidArgument, message, options); }
}
export class NotEmptyError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.NotEmpty, message, options); }
}
export class TooLargeError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.TooLarge, message, options); }
}
export class UnknownJobError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.UnknownJob, message, options); }
}
export class TimeoutError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.Timeout, message, options); }
}
export class BusyError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.Busy, message, options); }
}
export class InternalError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.Internal, message, options); }
}
export class IntegrityError extends PocketError {
  constructor(message: string, options?: { cause?: unknown }) { super(ErrorCode.Integrity, message, options); }
}

const classes: Record<ErrorCode, new (message: string, options?: { cause?: unknown }) => PocketError> = {
  NotFound: NotFoundError,
  AlreadyExists: AlreadyExistsError,
  Unauthorized: UnauthorizedError,
  CapacityExceeded: CapacityExceededError,
  NodeUnavailable: NodeUnavailableError,
  InvalidArgument: InvalidArgumentError,
  NotEmpty: NotEmptyError,
  TooLarge: TooLargeError,
  UnknownJob: UnknownJobError,
  Timeout: TimeoutError,
  Busy: BusyError,
  Internal: InternalError,
  Integrity: IntegrityError,
};

/** Rebuilds the typed error for a code received from the wire. Unknown codes become `Internal`. */
export function errorFromWire(code: string, message: string): PocketError {
  const cls = isErrorCode(code) ? classes[code] : InternalError;
  return new cls(message);
}

/** Type guard; with `code`, also checks which failure it is. */
export function isPocketError(e: unknown, code?: ErrorCode): e is PocketError {
  return e instanceof PocketError && (code === undefined || e.code === code);
}

/** Converts anything thrown by a handler into what goes on the wire. */
export function toWireError(e: unknown): { code: ErrorCode; message: string } {
  if (e instanceof PocketError) return { code: e.code, message: e.message };
  return { code: ErrorCode.Internal, message: e instanceof Error ? e.message : String(e) };
}
