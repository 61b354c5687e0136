"""Request shaping and the guardrails around a release: the request as this release takes it.

* :func:`prepare` — input guardrails (refuse with ``ContentBlocked``, or redact and
  flag), then :func:`shape`: the release's decoding defaults merged with the
  request's options, and its prompt template applied the way its runtime takes a
  prompt (``Runtime.prompt_style``: a ``"text"`` runtime continues one rendered
  string; a ``"messages"`` runtime gets the chat messages with the template's
  system prompt, and keeps its own caps unless the release sets decoding defaults);
* :func:`guard_output` — output guardrails on a whole answer (streams are guarded
  piece by piece by :class:`airlock.gateway.guard.StreamGuard`).

No telemetry here: the caller counts a refusal (:class:`airlock.gateway.failures.CountedCall`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from airlock.core.guardrails import SafetyPolicy, apply, redact_for_log
from airlock.core.prompting import DecodingDefaults, PromptTemplate, merge_decoding
from airlock.errors import ContentBlocked
from airlock.gateway import openai_wire as wire
from airlock.gateway.failures import CountedCall
from airlock.gateway.guard import watches
from airlock.runtime.base import Completion, FinishReason, GenerationRequest
from airlock.runtime.loader import LoadedRelease

request_log = logging.getLogger("airlock.gateway.requests")

_DEFAULT_TEMPLATE = PromptTemplate()
_DEFAULT_DECODING = DecodingDefaults()
_OPEN_DECODING = DecodingDefaults(max_tokens_cap=1 << 30)  # an upstream enforces its own cap


@dataclass(slots=True)
class Attempt:
    """One request shaped for one release, and when work on it began."""

    release: LoadedRelease
    request: GenerationRequest
    started: float
    input_flagged: bool
    ttft_ms: float | None = None  # streams: time to the first piece


@dataclass(frozen=True, slots=True)
class GuardedOutput:
    text: str
    finish_reason: FinishReason
    flagged: bool
    status: str | None  # the x-airlock-guardrail header: blocked, redacted, flagged


def prepare(
    release: LoadedRelease, req: wire.OpenAIRequest, call: CountedCall, *, log_prompt: bool
) -> Attempt:
    """Input guardrails, template and decoding: the request as ``release`` takes it.

    Run it inside ``call`` (a refusal is counted there); ``call.flagged`` says
    whether the input guardrails flagged the request.
    """
    started = perf_counter()
    policy = release.safety
    messages, prompt = req.messages, req.prompt
    if policy is not None and watches(policy, "input"):
        messages, prompt, call.flagged = guard_input(policy, req)
    request = shape(release, req, messages, prompt)
    if log_prompt:
        request_log.info(
            "%s %s -> %s: %s", req.kind, req.model, release.ref, redact_for_log(policy, req.text())
        )
    return Attempt(release, request, started, call.flagged)


def guard_input(
    policy: SafetyPolicy, req: wire.OpenAIRequest
) -> tuple[tuple[dict[str, Any], ...], str, bool]:
    """The request's messages and prompt after the input guardrails, and whether they flagged."""
    flagged = False
    if req.kind == "completion":
        result = apply(policy, req.prompt, direction="input")
        if result.blocked:
            raise ContentBlocked(policy.refusal, hint="the request matched the safety policy")
        return req.messages, result.text, bool(result.flags)
    messages = []
    for m in req.messages:
        result = apply(policy, m["content"], direction="input")
        if result.blocked:
            raise ContentBlocked(policy.refusal, hint="the request matched the safety policy")
        flagged = flagged or bool(result.flags)
        messages.append({**m, "content": result.text} if result.text != m["content"] else m)
    return tuple(messages), req.prompt, flagged


def guard_output(release: LoadedRelease, result: Completion) -> GuardedOutput:
    """A whole answer after the output guardrails of ``release``."""
    policy = release.safety
    if policy is None or not watches(policy, "output"):
        return GuardedOutput(result.text, result.finish_reason, False, None)
    checked = apply(policy, result.text, direction="output")
    if checked.blocked:
        return GuardedOutput(checked.text, "content_filter", True, "blocked")
    if checked.flags:
        status = "redacted" if checked.redacted else "flagged"
        return GuardedOutput(checked.text, result.finish_reason, True, status)
    return GuardedOutput(result.text, result.finish_reason, False, None)


def shape(
    release: LoadedRelease,
    req: wire.OpenAIRequest,
    messages: tuple[dict[str, Any], ...],
    prompt: str,
) -> GenerationRequest:
    """Decoding parameters and prompt for ``release``, the way its runtime takes them."""
    text_runtime = release.runtime.prompt_style == "text"
    decoding = release.decoding or (_DEFAULT_DECODING if text_runtime else _OPEN_DECODING)
    params = merge_decoding(decoding, req.options)
    if release.decoding is not None:
        forward: dict[str, Any] = {
            k: v for k, v in req.options.items() if k not in ("max_completion_tokens",)
        }
        forward.update(
            temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens
        )
        if params.stop:
            forward["stop"] = list(params.stop)
        if params.seed is not None:
            forward["seed"] = params.seed
    else:
        forward = dict(req.options)
    template = release.template
    if req.kind == "chat":
        if text_runtime:
            prompt = (template or _DEFAULT_TEMPLATE).render(messages)
        else:
            if (
                template is not None
                and template.system
                and not any(m["role"] == "system" for m in messages)
            ):
                messages = ({"role": "system", "content": template.system}, *messages)
            prompt = "\n".join(m["content"] for m in messages)
    elif template is not None:
        prompt = template.render_prompt(prompt)
    return GenerationRequest(
        kind=req.kind,
        prompt=prompt,
        params=params,
        messages=messages,
        forward=forward,
        user=req.user,
    )


__all__ = ["Attempt", "GuardedOutput", "guard_input", "guard_output", "prepare", "shape"]
