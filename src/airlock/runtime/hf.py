"""The transformers runtime (``pip install 'airlock[hf]'``): a Hugging Face model folder
(``config.json`` + safetensors + tokenizer files) served with ``generate``.

A release whose files are a PEFT LoRA adapter (``adapter_config.json`` +
``adapter_model.safetensors``) and whose ``base_model`` component names another
release is served as base + adapter. The loader hands this module folders whose
every byte it has verified; nothing is downloaded (``local_files_only``), and
pickle weights are refused (``use_safetensors``).

torch is imported only when such a release is loaded, so the rest of Airlock
never pays for it. One lock serialises ``generate`` per model: torch already
uses every core for one call, and the seeded global RNG must not interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from airlock.errors import AirlockError, InvalidInput, ServiceUnavailable
from airlock.runtime.base import (
    DECODING_PARAMETERS,
    Completion,
    Delta,
    FinishReason,
    GenerationRequest,
    PromptStyle,
    RuntimeFailure,
)

_HF_HINT = "install the extra: pip install 'airlock[hf]' (torch 2.13.0 CPU, transformers, peft)"


def _import_hf() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ServiceUnavailable(
            f"this release needs the transformers runtime, which is not installed ({exc.name})",
            hint=_HF_HINT,
        ) from exc
    return torch, transformers


class TransformersRuntime:
    kind = "transformers"
    prompt_style: PromptStyle = "text"
    accepts = DECODING_PARAMETERS  # penalties and logprobs are not mapped onto generate()

    def __init__(self, model_dir: Path, *, adapter_dir: Path | None = None) -> None:
        torch, transformers = _import_hf()
        self._torch = torch
        tokenizer_dir = adapter_dir if adapter_dir and _has_tokenizer(adapter_dir) else model_dir
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(tokenizer_dir), local_files_only=True
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(model_dir), local_files_only=True, use_safetensors=True
            )
            if adapter_dir is not None:
                try:
                    from peft import PeftModel
                except ImportError as exc:
                    raise ServiceUnavailable(
                        "this release is a LoRA adapter and peft is not installed", hint=_HF_HINT
                    ) from exc
                with warnings.catch_warnings():
                    # peft calls transformers APIs that newer transformers deprecate; that
                    # is between those two libraries, not something a release can fix.
                    warnings.simplefilter("ignore", FutureWarning)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
                    model = model.merge_and_unload()
        except AirlockError:
            raise
        except Exception as exc:
            raise InvalidInput(
                f"cannot load the Hugging Face model: {type(exc).__name__}: {exc}",
                hint="a release for this runtime holds config.json, *.safetensors and tokenizer files",
            ) from exc
        model.eval()
        self.model = model
        self.adapter = adapter_dir is not None
        self._lock = threading.Lock()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.params
        kwargs: dict[str, Any] = {
            "max_new_tokens": p.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if p.temperature > 0:
            kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p)
        else:
            kwargs.update(do_sample=False)
        return kwargs

    def _encode(self, prompt: str) -> Any:
        return self.tokenizer(prompt, return_tensors="pt")

    def _generate_sync(self, request: GenerationRequest, streamer: Any = None) -> Completion:
        inputs = self._encode(request.prompt)
        prompt_len = int(inputs["input_ids"].shape[1])
        with self._lock, self._torch.inference_mode():
            if request.params.seed is not None:
                self._torch.manual_seed(request.params.seed)
            output = self.model.generate(**inputs, **self._kwargs(request), streamer=streamer)
        new_ids = output[0][prompt_len:]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, request.params.stop)
        eos = self.tokenizer.eos_token_id
        ended = len(new_ids) < request.params.max_tokens or (
            len(new_ids) > 0 and int(new_ids[-1]) == eos
        )
        finish: FinishReason = "stop" if stopped or ended else "length"
        return Completion(text, prompt_len, len(new_ids), finish)

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            return await asyncio.to_thread(self._generate_sync, request)
        except AirlockError:
            raise
        except Exception as exc:
            raise RuntimeFailure(
                f"transformers generate failed: {exc}", kind="model_error"
            ) from exc

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        _, transformers = _import_hf()
        streamer = transformers.TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, self._generate_sync, request, streamer)
        pieces: Iterator[str] = iter(streamer)
        emitted = ""
        try:
            while True:
                piece = await asyncio.to_thread(next, pieces, None)
                if piece is None:
                    break
                if not piece:
                    continue
                emitted += piece
                cut, stopped = _cut_at_stop(emitted, request.params.stop)
                if stopped:
                    rest = cut[len(emitted) - len(piece) :]
                    if rest:
                        yield Delta(rest)
                    break
                yield Delta(piece)
            result = await job
        except AirlockError:
            raise
        except Exception as exc:
            raise RuntimeFailure(
                f"transformers generate failed: {exc}", kind="model_error"
            ) from exc
        finally:
            if not job.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(job)
        yield Delta("", final=result)

    async def aclose(self) -> None:
        return None


def _has_tokenizer(folder: Path) -> bool:
    return any(
        (folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.json")
    )


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [i for s in stops if (i := text.find(s)) >= 0]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


__all__ = ["TransformersRuntime"]
