"""Errors the data plane raises; each protocol adapter maps them to its own status codes.

Every message says what was wrong and, where it helps, what to send instead. Internal details
(stack traces, file paths) never reach clients; they go to the server log.
"""

from __future__ import annotations

NAME_LIMIT = 64  # characters of a client-chosen name (model, label, version) echoed in a message


def shorten(text: str, limit: int = NAME_LIMIT) -> str:
    """``repr`` of a client-supplied string, cut to ``limit`` characters with its real length.

    Error messages quote what the client sent; a 100 KB model name quoted whole would exceed
    gRPC's metadata limit (and fill logs), so names are cut here, in one place.
    """
    if not isinstance(text, str):
        return clip(text, limit)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def clip(value, limit: int = 4 * NAME_LIMIT) -> str:
    """``str(value)`` (a list of client-chosen keys, say) cut to ``limit`` characters."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ServingError(Exception):
    http_status = 500
    grpc_code = "INTERNAL"  # name of a grpc.StatusCode member

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class NotFound(ServingError):
    http_status = 404
    grpc_code = "NOT_FOUND"


class PayloadTooLarge(ServingError):
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class RequestTimeout(ServingError):
    """The client did not send the whole body within the read timeout."""

    http_status = 408
    grpc_code = "DEADLINE_EXCEEDED"


class UnsupportedMediaType(ServingError):
    http_status = 415
    grpc_code = "INVALID_ARGUMENT"


class ClientDisconnected(ServingError):
    """The client closed the connection before its request was read (nginx's 499)."""

    http_status = 499
    grpc_code = "CANCELLED"


class Unauthorized(ServingError):
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class Overloaded(ServingError):
    """The model's queue is full: answered at once so clients back off (429 + Retry-After)."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(ServingError):
    """The request was still queued at its deadline: answered at once and never run."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class Unavailable(ServingError):
    """No servable version (yet), or the server is shutting down."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class InferenceFailed(ServingError):
    http_status = 500
    grpc_code = "INTERNAL"
