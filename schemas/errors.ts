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
