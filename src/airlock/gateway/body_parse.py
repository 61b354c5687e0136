"""Request bodies parsed where they cannot stall the event loop.

A body up to :data:`~airlock.gateway.openai_wire.INLINE_BYTES` (256 KiB: every
ordinary request) is parsed in place. A larger one, which only a raised
``max_body_bytes`` lets through, goes to a worker process: ``json.loads`` and the
byte scans hold the GIL, so a thread would stall the loop just the same, and a
34 MB body costs a second of CPU. The worker runs the same pure parsing
(:func:`~airlock.gateway.openai_wire.parse_request`, message lists counted as they
are read so a refusal costs what the limit allows, not what the body holds) and
sends back the request or the refusal; the loop only hands the bytes over.

One worker (``spawn``: never a fork of a threaded server), started with the app when
``max_body_bytes`` is raised past its default (1 MiB), else with the first large body,
and stopped with the app; a worker that dies is replaced and its request answered ``503``.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from airlock.core.request_limits import GatewayLimits
from airlock.errors import AirlockError, ServiceUnavailable
from airlock.gateway import openai_wire as wire
from airlock.gateway import responses_wire
from airlock.runtime.base import RequestKind

log = logging.getLogger("airlock.gateway")
T = TypeVar("T")


def parse_completion(body: bytes, kind: RequestKind, limits: GatewayLimits) -> wire.OpenAIRequest:
    """A ``/v1/chat/completions`` or ``/v1/completions`` body (pure)."""
    return wire.parse_request(body, kind, limits=limits)


def parse_responses(
    body: bytes, limits: GatewayLimits
) -> tuple[dict[str, Any], wire.OpenAIRequest]:
    """A ``/v1/responses`` body (pure): the request as asked, and the chat request serving it."""
    asked = wire.load_body(body, limits, listed="input")
    chat = wire.dumps(responses_wire.to_chat_body(asked))
    return asked, wire.parse_request(chat, "chat", limits=limits)


class BodyParser:
    """Runs a parse in place or, for a body over ``inline_bytes``, in the worker process."""

    def __init__(self, *, inline_bytes: int = wire.INLINE_BYTES) -> None:
        self.inline_bytes = inline_bytes
        self._pool: ProcessPoolExecutor | None = None
        self.off_loop = 0  # bodies parsed in the worker (for tests and /metrics readers)

    async def run(self, body: bytes, parse: Callable[..., T], *args: Any) -> T:
        """``parse(body, *args)``; ``parse`` must be a module-level function (it is pickled)."""
        if len(body) <= self.inline_bytes:
            return parse(body, *args)
        self.off_loop += 1
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(
                self._executor(), functools.partial(_refusals_returned, parse, body, *args)
            )
        except BrokenProcessPool:
            self._reset()
            raise ServiceUnavailable(
                "the gateway's request parser stopped while reading this request",
                hint="send it again; if it keeps failing, send a smaller request",
            ) from None
        if isinstance(outcome, _Refusal):
            raise outcome.rebuild()
        result: T = outcome
        return result

    def start(self) -> None:
        """Start the worker now (it imports the gateway: seconds of CPU), not with the first
        large body; it starts off the event loop either way."""
        self._executor().submit(_ready)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def _reset(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker (a parse in progress is abandoned)."""
        self._reset()


class _Refusal:
    """An ``AirlockError`` as data: its class (by reference) and attributes. Errors whose
    ``__init__`` takes more than a message (``ParameterError``) do not pickle as they are."""

    def __init__(self, exc: AirlockError) -> None:
        self.cls = type(exc)
        self.state = dict(vars(exc))

    def rebuild(self) -> AirlockError:
        exc = self.cls.__new__(self.cls)
        Exception.__init__(exc, self.state.get("message", ""))
        vars(exc).update(self.state)
        return exc


def _ready() -> bool:
    return True  # unpickling this function imported the parsing code in the worker


def _refusals_returned(parse: Callable[..., Any], *args: Any) -> Any:
    """In the worker: the parse's result, or its refusal as a :class:`_Refusal`."""
    try:
        return parse(*args)
    except AirlockError as exc:
        return _Refusal(exc)


__all__ = ["BodyParser", "parse_completion", "parse_responses"]
