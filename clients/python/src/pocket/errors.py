"""Every failure a Pocket operation can report: one class per wire code.

Codes travel on the wire (NATS reply headers ``Pocket-Error`` and
``Pocket-Message``, error frames of the direct transport) and are rebuilt
into the same class here, as ``schemas/errors.ts`` does for TypeScript.

Example::

    try:
        await job.get("missing")
    except NotFoundError:
        ...
    except PocketError as e:
        print(e.code, e)
"""

from __future__ import annotations


class ErrorCode:
    """The wire codes (``schemas/errors.ts``), spelled once."""

    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    UNAUTHORIZED = "Unauthorized"
    CAPACITY_EXCEEDED = "CapacityExceeded"
    NODE_UNAVAILABLE = "NodeUnavailable"
    INVALID_ARGUMENT = "InvalidArgument"
    NOT_EMPTY = "NotEmpty"
    TOO_LARGE = "TooLarge"
    UNKNOWN_JOB = "UnknownJob"
    TIMEOUT = "Timeout"
    BUSY = "Busy"
    INTERNAL = "Internal"
    #: Bytes do not match their checksum: corrupted in a store or on the way. Never returned as data.
    INTEGRITY = "Integrity"


class PocketError(Exception):
    """Base of every Pocket error; ``code`` is the wire code."""

    code: str = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(PocketError):
    code = ErrorCode.NOT_FOUND


class AlreadyExistsError(PocketError):
    code = ErrorCode.ALREADY_EXISTS


class UnauthorizedError(PocketError):
    code = ErrorCode.UNAUTHORIZED


class CapacityExceededError(PocketError):
    code = ErrorCode.CAPACITY_EXCEEDED


class NodeUnavailableError(PocketError):
    code = ErrorCode.NODE_UNAVAILABLE


class InvalidArgumentError(PocketError):
    code = ErrorCode.INVALID_ARGUMENT


class NotEmptyError(PocketError):
    code = ErrorCode.NOT_EMPTY


class TooLargeError(PocketError):
    code = ErrorCode.TOO_LARGE


class UnknownJobError(PocketError):
    code = ErrorCode.UNKNOWN_JOB


class TimeoutError(PocketError):  # noqa: A001 - the wire code's name; builtins.TimeoutError stays reachable
    code = ErrorCode.TIMEOUT


class BusyError(PocketError):
    code = ErrorCode.BUSY


class InternalError(PocketError):
    code = ErrorCode.INTERNAL


class IntegrityError(PocketError):
    code = ErrorCode.INTEGRITY


ERROR_CLASSES: dict[str, type[PocketError]] = {
    cls.code: cls
    for cls in (
        NotFoundError,
        AlreadyExistsError,
        UnauthorizedError,
        CapacityExceededError,
        NodeUnavailableError,
        InvalidArgumentError,
        NotEmptyError,
        TooLargeError,
        UnknownJobError,
        TimeoutError,
        BusyError,
        InternalError,
        IntegrityError,
    )
}


def is_error_code(value: object) -> bool:
    """True for one of the wire codes."""
    return isinstance(value, str) and value in ERROR_CLASSES


def error_from_wire(code: object, message: object) -> PocketError:
    """Rebuilds the typed error for a code received from the wire; an unknown code becomes ``InternalError``."""
    cls = ERROR_CLASSES.get(code, InternalError) if isinstance(code, str) else InternalError
    text = message if isinstance(message, str) else str(code)
    if cls is InternalError and code != ErrorCode.INTERNAL:
        text = f"{text} (wire code {str(code)[:64]!r})"
    return cls(text)
