"""The built-in runtime: Airlock's own n-gram model, generating in worker threads.

Sampling is numpy work that holds the GIL only in short stretches; it runs in
the event loop's default executor so one slow generation never stalls the
gateway's other requests. Streaming hands each piece from the worker thread to
the loop as it is sampled, and stops the worker when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

from airlock.errors import AirlockError
from airlock.runtime.base import (
    DECODING_PARAMETERS,
    Completion,
    Delta,
    GenerationRequest,
    PromptStyle,
    RuntimeFailure,
)
from airlock.runtime.builtin_model import BuiltinModel, Generation


class BuiltinRuntime:
    kind = "builtin"
    prompt_style: PromptStyle = "text"
    accepts = DECODING_PARAMETERS  # no logprobs, penalties, bias; JSON is not guaranteed

    def __init__(self, model: BuiltinModel) -> None:
        self.model = model

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            result = await asyncio.to_thread(
                self.model.generate, request.prompt, **request.params.as_kwargs()
            )
        except AirlockError:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"the built-in model failed: {exc}", kind="model_error") from exc
        return _completion(result)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        kwargs = request.params.as_kwargs()

        def post(tag: str, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (tag, value))

        def work() -> None:
            pieces = self.model.stream(request.prompt, **kwargs)
            try:
                while not stop.is_set():
                    try:
                        post("piece", next(pieces))
                    except StopIteration as done:
                        post("done", done.value)
                        return
            except BaseException as exc:
                post("error", exc)
            finally:
                pieces.close()

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                tag, value = await queue.get()
                if tag == "piece":
                    yield Delta(value)
                elif tag == "done":
                    yield Delta("", final=_completion(value))
                    return
                else:
                    if isinstance(value, AirlockError):
                        raise value
                    raise RuntimeFailure(
                        f"the built-in model failed: {value}", kind="model_error"
                    ) from value
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(worker)

    async def aclose(self) -> None:
        return None


def _completion(g: Generation) -> Completion:
    return Completion(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason)


__all__ = ["BuiltinRuntime"]
