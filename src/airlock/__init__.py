"""Airlock: version, gate, roll out and roll back generative models safely.

The public API: the error tree (every error Airlock raises on purpose) and
:class:`Client`, the SDK for the REST API of ``airlock serve``. ``Client`` is
imported on first use, so ``import airlock`` (and the CLI) stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airlock.errors import (
    AirlockError,
    Conflict,
    ContentBlocked,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    RateLimited,
    RuntimeFailure,
    RuntimeTimeout,
    ServiceUnavailable,
    Unauthorized,
    UnsafeArtifact,
)

if TYPE_CHECKING:
    from airlock.client import Client

__version__ = "0.1.0"

__all__ = [
    "AirlockError",
    "Client",
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
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from airlock.client import Client

        return Client
    raise AttributeError(f"module 'airlock' has no attribute {name!r}")
