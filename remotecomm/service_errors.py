"""The one shape of a refusal by a manager service (sessions, jobs, administration, fleet,
firmware): an HTTP status, a stable code, a message for people and extra JSON fields.  The
services know no HTTP; the API turns one into its JSON error answer."""

from __future__ import annotations


class ServiceError(Exception):
    """A request a service refused: HTTP status, stable code, message, extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
