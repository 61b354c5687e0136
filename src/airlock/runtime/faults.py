"""Fault injection: make a release misbehave on purpose, for rollback drills and tests.

A release's ``config.json`` may hold a ``faults`` section::

    "faults": {"error_rate": 0.2, "latency_ms": 150, "unsafe_rate": 0.1,
               "unsafe_text": "call me at 555-123-4567", "seed": 7}

``error_rate`` of calls fail with ``RuntimeFailure(kind="injected")``; every call
waits ``latency_ms`` more; ``unsafe_rate`` of answers are replaced by
``unsafe_text`` (which the release's safety policy should then catch). Because
the faults live in the release's own files, a faulty release is a distinct,
versioned, audited artifact like any other.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from airlock.errors import InvalidInput
from airlock.runtime.base import Completion, Delta, GenerationRequest, Runtime, RuntimeFailure

DEFAULT_UNSAFE_TEXT = "Sure! Email me at leak@example.com or call 555-123-4567."


@dataclass(frozen=True, slots=True)
class FaultSpec:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    unsafe_rate: float = 0.0
    unsafe_text: str = DEFAULT_UNSAFE_TEXT
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "unsafe_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInput(f"faults.{name} must be in [0, 1], got {value}")
        if self.latency_ms < 0:
            raise InvalidInput(f"faults.latency_ms must be >= 0, got {self.latency_ms}")

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.latency_ms or self.unsafe_rate)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FaultSpec:
        raw = config.get("faults") or {}
        if not isinstance(raw, Mapping):
            raise InvalidInput("config.json: faults must be a mapping")
        unknown = sorted(
            set(raw) - {"error_rate", "latency_ms", "unsafe_rate", "unsafe_text", "seed"}
        )
        if unknown:
            raise InvalidInput(
                f"config.json: unknown fault setting(s): {', '.join(unknown)}",
                hint="use error_rate, latency_ms, unsafe_rate, unsafe_text, seed",
            )
        try:
            return cls(
                error_rate=float(raw.get("error_rate", 0.0)),
                latency_ms=float(raw.get("latency_ms", 0.0)),
                unsafe_rate=float(raw.get("unsafe_rate", 0.0)),
                unsafe_text=str(raw.get("unsafe_text", DEFAULT_UNSAFE_TEXT)),
                seed=None if raw.get("seed") is None else int(raw["seed"]),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"config.json: bad fault setting: {exc}") from exc


class FaultyRuntime:
    """Wraps a runtime and injects the faults of a :class:`FaultSpec`."""

    def __init__(self, inner: Runtime, spec: FaultSpec) -> None:
        self.inner = inner
        self.spec = spec
        self.kind = inner.kind
        self.prompt_style = inner.prompt_style
        self.accepts = inner.accepts
        self._rng = random.Random(spec.seed)

    async def _before(self) -> bool:
        """Wait, maybe fail; return whether this answer is to be replaced by unsafe text."""
        if self.spec.latency_ms:
            await asyncio.sleep(self.spec.latency_ms / 1000.0)
        if self.spec.error_rate and self._rng.random() < self.spec.error_rate:
            raise RuntimeFailure("injected fault (faults.error_rate)", kind="injected")
        return bool(self.spec.unsafe_rate) and self._rng.random() < self.spec.unsafe_rate

    async def generate(self, request: GenerationRequest) -> Completion:
        unsafe = await self._before()
        result = await self.inner.generate(request)
        if unsafe:
            return Completion(
                self.spec.unsafe_text,
                result.prompt_tokens,
                result.completion_tokens,
                result.finish_reason,
            )
        return result

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        unsafe = await self._before()
        if unsafe:
            result = await self.inner.generate(request)
            yield Delta(self.spec.unsafe_text)
            yield Delta(
                "",
                final=Completion(
                    self.spec.unsafe_text,
                    result.prompt_tokens,
                    result.completion_tokens,
                    result.finish_reason,
                ),
            )
            return
        async for delta in self.inner.stream(request):
            yield delta

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = ["DEFAULT_UNSAFE_TEXT", "FaultSpec", "FaultyRuntime"]
