"""The one protocol every model back end speaks, and the values that cross it.

A :class:`Runtime` answers a :class:`GenerationRequest` whole (``generate``) or
piece by piece (``stream``: :class:`Delta` values, the last one carrying the
finished :class:`Completion`). The gateway owns timeouts, fallback, guardrails
and telemetry; a runtime only generates, and reports failures as
:class:`~airlock.errors.RuntimeFailure` (kept in the one error tree of
:mod:`airlock.errors`, re-exported here) with a ``kind`` the telemetry counts by::

    ServiceUnavailable
     └── RuntimeFailure        502  the release could not answer (kind: upstream_5xx,
          │                         upstream_4xx, connect, bad_response, model_error,
          │                         injected, stream_interrupted)
          └── RuntimeTimeout   504  no answer within the release's timeout (kind: timeout)

A runtime also says which prompt it takes (``prompt_style``): ``"text"`` (it
continues one string: the gateway renders chat messages through the release's
prompt template, and caps decoding with the built-in defaults) or ``"messages"``
(an OpenAI-compatible server that applies its own chat template and caps).

A request the *client* got wrong (e.g. an upstream's 400) is ``InvalidInput``
instead: it is not the release's fault and is never retried elsewhere.

Every runtime declares in ``accepts`` the optional OpenAI request parameters it
honours. The gateway refuses a request that asks for a parameter one of the
releases that may answer it does not honour (400 naming the parameter), so no
parameter is ever silently dropped:

====================  ==================================================================
``builtin``           :data:`DECODING_PARAMETERS` (the n-gram model samples with them)
``transformers``      :data:`DECODING_PARAMETERS` (``generate``; stop sequences cut)
``upstream``          :data:`UPSTREAM_PARAMETERS`: forwarded as given, plus the names a
                      release's ``config.json`` lists in ``extra_params`` (e.g. vLLM's
                      ``top_k``)
====================  ==================================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from airlock.core.prompting import DecodingParams
from airlock.errors import RuntimeFailure, RuntimeTimeout

RequestKind = Literal["chat", "completion"]
PromptStyle = Literal["text", "messages"]
FinishReason = Literal["stop", "length", "content_filter"]

DECODING_PARAMETERS: frozenset[str] = frozenset(
    {"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed"}
)
"""What every runtime honours: the decoding parameters of :func:`merge_decoding`."""

UPSTREAM_PARAMETERS: frozenset[str] = DECODING_PARAMETERS | frozenset(
    {
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "response_format",
        "logprobs",
        "top_logprobs",
        "echo",
        "best_of",
        "suffix",
        "reasoning_effort",
    }
)
"""What an OpenAI-compatible upstream receives as given (it refuses what it cannot do)."""

FAILURE_KINDS = (
    "timeout",
    "connect",
    "upstream_5xx",
    "upstream_4xx",
    "bad_response",
    "model_error",
    "injected",
    "stream_interrupted",
)


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One request, already shaped for a release.

    ``messages`` are the OpenAI chat messages (chat requests; the release's system
    prompt applied), ``prompt`` is the text a completion model continues (the
    release's template applied). ``params`` are the merged decoding parameters;
    ``forward`` are the OpenAI fields an upstream server should receive (the
    request's own plus the release's defaults), so an upstream keeps its own
    defaults for anything neither names.
    """

    kind: RequestKind
    prompt: str
    params: DecodingParams
    messages: tuple[Mapping[str, Any], ...] = ()
    forward: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"
    # The choice's ``logprobs`` as the back end gave them (upstream, when asked), else None.
    logprobs: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of streamed text; the last delta of a stream carries ``final``."""

    text: str
    final: Completion | None = None


@runtime_checkable
class Runtime(Protocol):
    """A loaded model that answers requests. One instance serves many requests at once."""

    kind: str
    prompt_style: PromptStyle
    """``"text"``: one prompt string to continue; ``"messages"``: OpenAI chat messages."""
    accepts: frozenset[str]
    """The optional OpenAI request parameters this runtime honours (see the module doc)."""

    async def generate(self, request: GenerationRequest) -> Completion: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]: ...

    async def aclose(self) -> None: ...


def count_tokens(text: str) -> int:
    """A cheap token estimate (words and punctuation) for back ends that report none."""
    if not text:
        return 0
    count, in_word = 0, False
    for ch in text:
        if ch.isalnum():
            if not in_word:
                count += 1
                in_word = True
        else:
            in_word = False
            if not ch.isspace():
                count += 1
    return count


__all__ = [
    "DECODING_PARAMETERS",
    "FAILURE_KINDS",
    "UPSTREAM_PARAMETERS",
    "Completion",
    "Delta",
    "FinishReason",
    "GenerationRequest",
    "PromptStyle",
    "RequestKind",
    "Runtime",
    "RuntimeFailure",
    "RuntimeTimeout",
    "count_tokens",
]
