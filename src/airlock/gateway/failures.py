"""How the gateway maps and counts what goes wrong in one call of a release.

Every call of a runtime (and the shaping before it) runs inside one
:class:`CountedCall`; whatever escapes is mapped and counted in one place:

* ``InvalidInput`` (a guardrail refusal, a request the release cannot take, an
  upstream's 400) is the client's doing: counted as a rejection, re-raised as is;
* anything else becomes a :class:`~airlock.errors.RuntimeFailure` — a timeout
  ``RuntimeTimeout`` naming the budget, another Airlock error or a foreign
  exception ``model_error``, an empty stream ``bad_response`` — counted as a
  failure of the release by its ``kind`` and raised ``from`` the original;
* a cancellation (``BaseException`` that is no ``Exception``) passes untouched.

``cluster=None`` marks a fallback retry: it is in no window, so nothing is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from airlock.errors import (
    AirlockError,
    ContentBlocked,
    InvalidInput,
    RuntimeFailure,
    RuntimeTimeout,
)
from airlock.gateway.telemetry import Key, Telemetry


def as_failure(exc: BaseException, ref: str, timeout_s: float) -> RuntimeFailure | None:
    """``exc`` as the release's failure; None for a cancellation (not the release's doing)."""
    if isinstance(exc, RuntimeFailure):
        return exc
    if isinstance(exc, TimeoutError):
        return RuntimeTimeout(f"{ref} did not answer within {timeout_s:g} s")
    if isinstance(exc, StopAsyncIteration):
        return RuntimeFailure(f"{ref} sent an empty stream", kind="bad_response")
    if isinstance(exc, AirlockError):
        return RuntimeFailure(exc.message, kind="model_error")
    if isinstance(exc, Exception):
        return RuntimeFailure(f"{ref} failed: {type(exc).__name__}: {exc}", kind="model_error")
    return None


@dataclass(slots=True)
class CountedCall:
    """A context manager around one call of ``ref``: maps and counts what escapes it."""

    telemetry: Telemetry
    key: Key
    timeout_s: float
    cluster: int | None  # None: a fallback retry, in no window
    fallback: bool = False  # a failure here is answered by the stable release
    flagged: bool = False  # the input guardrails flagged the request (a refusal says so)

    @property
    def ref(self) -> str:
        return self.key[1]

    def __enter__(self) -> CountedCall:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, InvalidInput):
            if self.cluster is not None:
                flagged = self.flagged or isinstance(exc, ContentBlocked)
                self.telemetry.rejection(self.key, cluster=self.cluster, flagged=flagged)
            return  # re-raised as it is
        failure = as_failure(exc, self.ref, self.timeout_s)
        if failure is None:
            return
        if self.cluster is not None:
            self.telemetry.failure(
                self.key, failure.kind, cluster=self.cluster, fallback=self.fallback
            )
        if failure is not exc:
            raise failure from exc


__all__ = ["CountedCall", "as_failure"]
