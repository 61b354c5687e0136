"""One error tree for all of Airlock.

::

    AirlockError                 status 500  base: every error Airlock raises on purpose
     ├── InvalidInput            400  the caller gave something malformed (a bad ref, path, semver...)
     │    ├── PayloadTooLarge    413  a request body over the size limit
     │    └── ContentBlocked     400  a request the release's safety policy refuses (input direction)
     ├── NotFound                404  a model, release, alias, blob or event that does not exist
     ├── Conflict                409  the request clashes with what exists (a reused version...)
     ├── Forbidden               403  the actor's role does not allow the action
     │    └── Unauthorized       401  no credentials, or ones that are not valid (unknown, revoked)
     ├── RateLimited             429  a caller went over its requests or tokens per minute
     ├── PolicyViolation         422  a promotion rule blocks the action
     ├── IntegrityError          500  stored bytes or the audit chain do not match their hashes
     ├── UnsafeArtifact          422  a pickle-based file without --allow-pickle
     └── ServiceUnavailable      503  a database, store or upstream model cannot be reached
          └── RuntimeFailure     502  a release could not answer (``kind`` says how: upstream_5xx,
               │                      upstream_4xx, connect, bad_response, model_error, injected,
               │                      stream_interrupted)
               └── RuntimeTimeout 504 no answer within the release's timeout (kind: timeout)

Each error carries ``status`` (the HTTP status the API maps it to), a short
machine-readable ``code`` and a ``hint``: the next thing a user can do.
Foreign exceptions are translated at the boundary with ``raise ... from``.
"""

from __future__ import annotations


class AirlockError(Exception):
    """Base of every error Airlock raises on purpose."""

    status: int = 500
    code: str = "airlock_error"
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidInput(AirlockError):
    status = 400
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "payload_too_large"


class ContentBlocked(InvalidInput):
    """The request was refused by the release's safety policy (input direction)."""

    code = "content_filter"


class NotFound(AirlockError):
    status = 404
    code = "not_found"
    default_hint = "run `airlock ls` to see what exists"


class Conflict(AirlockError):
    status = 409
    code = "conflict"


class Forbidden(AirlockError):
    status = 403
    code = "forbidden"
    default_hint = "ask an admin for a token with the needed role"


class Unauthorized(Forbidden):
    """Who is calling is unknown: no token, or one that is not (or no longer) valid."""

    status = 401
    code = "unauthorized"
    default_hint = "send 'Authorization: Bearer <token>'; create one with `airlock token create`"


class RateLimited(AirlockError):
    """A caller went over its requests or tokens per minute: HTTP 429 with ``Retry-After``."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (what ``Retry-After`` carries)."""
        return str(max(1, int(-(-self.retry_after // 1))))


class PolicyViolation(AirlockError):
    status = 422
    code = "policy_violation"
    default_hint = "run `airlock check REF --for STAGE` to see every rule"


class IntegrityError(AirlockError):
    status = 500
    code = "integrity_error"
    default_hint = "run `airlock verify` to see which blobs are damaged"


class UnsafeArtifact(AirlockError):
    status = 422
    code = "unsafe_artifact"
    default_hint = "convert the weights to safetensors, or pass --allow-pickle to accept the risk"


class ServiceUnavailable(AirlockError):
    status = 503
    code = "service_unavailable"


class RuntimeFailure(ServiceUnavailable):
    """A release failed to answer; ``kind`` says how (one of ``runtime.base.FAILURE_KINDS``)."""

    status = 502
    code = "runtime_failure"

    def __init__(self, message: str, *, kind: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


class RuntimeTimeout(RuntimeFailure):
    """A release gave no answer within its timeout (kind ``timeout``)."""

    status = 504
    code = "runtime_timeout"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, kind="timeout", hint=hint)


__all__ = [
    "AirlockError",
    "Conflict",
    "ContentBlocked",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PolicyViolation",
    "RateLimited",
    "RuntimeFailure",
    "RuntimeTimeout",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsafeArtifact",
]
