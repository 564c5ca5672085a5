"""Errors the data plane raises; each protocol adapter maps them to its own status codes.

Every message says what was wrong and, where it helps, what to send instead. Internal details
(stack traces, file paths) never reach clients; they go to the server log.
"""

from __future__ import annotations


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


class Unauthorized(ServingError):
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class Overloaded(ServingError):
    """The model's queue is full: answered at once so clients back off (429 + Retry-After)."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class Unavailable(ServingError):
    """No servable version (yet), or the server is shutting down."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class InferenceFailed(ServingError):
    http_status = 500
    grpc_code = "INTERNAL"
