"""Which OpenAI request parameters the gateway takes, and which releases honour them.

No parameter is ever silently ignored. Every top-level field of a request is one of:

=================  =====================================================================
gateway's own      ``model``, ``messages`` / ``prompt``, ``stream``, ``stream_options``,
                   ``user``, ``n`` (must be 1)
harmless           accepted, nothing to honour: ``metadata``, ``store``, ``service_tier``,
                   ``parallel_tool_calls``, ``prompt_cache_key``, ``safety_identifier``,
                   ``modalities: ["text"]``
honoured by some   temperature, top_p, max_tokens, stop, seed (every runtime); penalties,
                   ``logit_bias``, ``response_format``, ``logprobs``... (upstream): each
                   runtime declares what it honours (``Runtime.accepts``)
not supported      tools and function calling, audio, predicted outputs, web search: 400
unknown            400 ``unknown_parameter`` ("Unrecognized request argument supplied"),
                   as OpenAI answers, unless the releases' runtimes declare it (an
                   upstream release's ``extra_params``, e.g. vLLM's ``top_k``)
=================  =====================================================================

A parameter given at its OpenAI default (``presence_penalty: 0``, ``logprobs:
false``, ``response_format: {"type": "text"}``, ``logit_bias: {}``, ``echo: false``,
``best_of: 1``...) asks for nothing and passes everywhere.

The fair rule. A request the plan routes may be answered by the stable release or
any candidate (and a failing candidate falls back to the stable one), so a
parameter is accepted for a plan-routed request only if *every* answering release
of the service's current plan honours it. Refusing only on the candidate's arm
would make the candidate's users see errors the stable's users do not, and
would hide exactly those requests from the comparison. A pinned or opted-out
request has one release, and only it is asked. Shadows never answer a user and
are not consulted: a shadow copy asks a shadow release for what it can do. A
refusal is the client's doing: it happens before any generation and is counted
in no release's telemetry.

Log probabilities are refused on a release whose safety policy watches its
output (they would show the tokens a guardrail redacted), and with ``stream: true``
(the gateway streams text only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airlock.errors import InvalidInput
from airlock.gateway.guard import watches
from airlock.gateway.routing import Route
from airlock.runtime.base import DECODING_PARAMETERS, RequestKind

if TYPE_CHECKING:
    from airlock.gateway.access import Principal
    from airlock.gateway.engine import Gateway
    from airlock.gateway.openai_wire import OpenAIRequest
    from airlock.runtime.loader import LoadedRelease

GATEWAY_FIELDS: Mapping[RequestKind, frozenset[str]] = {
    "chat": frozenset({"model", "messages", "stream", "stream_options", "user", "n"}),
    "completion": frozenset({"model", "prompt", "stream", "stream_options", "user", "n"}),
}
HARMLESS = frozenset(
    {
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
        "prompt_cache_key",
        "safety_identifier",
    }
)
_SHARED = DECODING_PARAMETERS | {
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "response_format",
}
OPENAI_PARAMETERS: Mapping[RequestKind, frozenset[str]] = {
    "chat": _SHARED | {"top_logprobs", "reasoning_effort"},
    "completion": _SHARED | {"echo", "best_of", "suffix"},
}
"""The optional OpenAI parameters of each endpoint that some runtime may honour."""

UNSUPPORTED = {
    "tools": "tool calling is not routed by the Airlock gateway",
    "functions": "function calling is not routed by the Airlock gateway",
    "tool_choice": "tool calling is not routed by the Airlock gateway",
    "function_call": "function calling is not routed by the Airlock gateway",
    "audio": "the gateway serves text only",
    "modalities": "the gateway serves text only",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
}

# Values that ask for nothing: the OpenAI defaults.
_NO_OPS: Mapping[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
    "response_format": ({"type": "text"},),
    "echo": (False,),
    "best_of": (1,),
    "suffix": ("",),
    "top_logprobs": (0,),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none", "auto"),
    "modalities": (["text"],),
}
_LOGPROBS = frozenset({"logprobs", "top_logprobs"})
_FORMATS = ("text", "json_object", "json_schema")


class ParameterError(InvalidInput):
    """A request field with a value the gateway refuses; ``param`` names it in the OpenAI
    error body (``error.param``)."""

    code = "invalid_value"

    def __init__(self, param: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


class UnsupportedParameter(ParameterError):
    """A request parameter that the gateway, or a release that may answer, cannot honour."""

    code = "unsupported_parameter"


class UnknownParameter(UnsupportedParameter):
    """A top-level field that is no OpenAI parameter of the endpoint (OpenAI's answer too)."""

    code = "unknown_parameter"


def requested_options(data: Mapping[str, Any], kind: RequestKind) -> dict[str, Any]:
    """The parameters ``data`` asks for (no-op defaults and ``None`` left out), to be
    honoured or refused by the releases; refuses what no runtime here supports."""
    own = GATEWAY_FIELDS[kind]
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in own or name in HARMLESS or value is None:
            continue
        if name in _NO_OPS and any(value == v for v in _NO_OPS[name]):
            continue
        if name in UNSUPPORTED:
            raise UnsupportedParameter(
                name,
                f"'{name}' is not supported: {UNSUPPORTED[name]}",
                hint=f"remove '{name}' from the request",
            )
        out[name] = value
    _check_values(out, kind)
    if kind == "chat" and out.get("logprobs") is False:
        del out["logprobs"]  # the default, once top_logprobs is known not to need it
    if data.get("stream") is True and any(p in out for p in _LOGPROBS):
        raise UnsupportedParameter(
            "logprobs",
            "'logprobs' cannot be combined with 'stream': true on the Airlock gateway",
            hint="ask for log probabilities without streaming",
        )
    return out


def _check_values(options: Mapping[str, Any], kind: RequestKind) -> None:
    fmt = options.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") not in _FORMATS):
        raise UnsupportedParameter(
            "response_format",
            "'response_format' must be an object whose type is text, json_object or json_schema",
        )
    logprobs = options.get("logprobs")
    if kind == "chat":
        if "logprobs" in options and not isinstance(logprobs, bool):
            raise UnsupportedParameter("logprobs", "'logprobs' must be true or false")
        if "top_logprobs" in options and logprobs is not True:
            raise UnsupportedParameter("top_logprobs", "'top_logprobs' needs 'logprobs': true")
    elif "logprobs" in options and (
        isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 5
    ):
        raise UnsupportedParameter("logprobs", "'logprobs' must be an integer from 0 to 5")


def honoured_by(release: LoadedRelease) -> frozenset[str]:
    """The optional parameters ``release`` honours: its runtime's, less log probabilities
    when its safety policy watches the output (they would show what it redacts)."""
    accepts: frozenset[str] = getattr(release.runtime, "accepts", DECODING_PARAMETERS)
    if watches(release.safety, "output"):
        accepts = accepts - _LOGPROBS
    return accepts


def answering(
    releases: Mapping[str, LoadedRelease], stable: str, candidates: Iterable[str], route: Route
) -> tuple[LoadedRelease, ...]:
    """The releases that may answer a request so routed (the fair rule, module doc)."""
    if route.reason != "plan":
        return (releases[route.release],)
    refs = dict.fromkeys((stable, *candidates))
    return tuple(releases[r] for r in refs if r in releases)


def check_request(
    gateway: Gateway, req: OpenAIRequest, headers: Mapping[str, str], principal: Principal
) -> None:
    """At the edge, before ``gateway.complete`` / ``gateway.stream``: refuse a parameter a
    release that may answer ``req`` does not honour. Routes only when something beyond
    the decoding parameters is asked (routing again costs a hash, and is deterministic
    for a user; a request without a user key is checked against the whole plan anyway)."""
    if all(name in DECODING_PARAMETERS for name in req.options):
        return
    state, route = gateway.route(req, headers, principal)
    plan = state.plan
    releases = answering(state.releases, plan.stable, (c.release for c in plan.candidates), route)
    check_honoured(req.options, req.kind, req.service, releases)


def check_honoured(
    options: Mapping[str, Any],
    kind: RequestKind,
    service: str,
    releases: Iterable[LoadedRelease],
) -> None:
    """Refuse (before any generation) a parameter one of ``releases`` does not honour."""
    asked = [name for name in options if name not in DECODING_PARAMETERS]
    if not asked:
        return
    releases = tuple(releases)
    for name in asked:
        lacking = [r for r in releases if name not in honoured_by(r)]
        if not lacking:
            continue
        if name not in OPENAI_PARAMETERS[kind] and all(
            name not in honoured_by(r) for r in releases
        ):
            raise UnknownParameter(
                name,
                f"Unrecognized request argument supplied: {name}",
                hint="remove it; an upstream release may declare server-specific "
                "parameters in its config.json 'extra_params'",
            )
        runtimes = ", ".join(sorted({r.runtime_kind for r in lacking}))
        if len(lacking) < len(releases):
            why = (
                f"every release that may answer must honour it during a rollout, and one "
                f"({runtimes} runtime) cannot"
            )
        else:
            why = f"its {runtimes} runtime cannot honour it"
        if name in _LOGPROBS and all(watches(r.safety, "output") for r in lacking):
            why = "its safety policy checks the output, which log probabilities would bypass"
        raise UnsupportedParameter(
            name,
            f"'{name}' is not supported by model '{service}': {why}",
            hint=f"remove '{name}', or serve '{service}' from a runtime that honours it "
            "(an upstream OpenAI-compatible server)",
        )


__all__ = [
    "GATEWAY_FIELDS",
    "HARMLESS",
    "OPENAI_PARAMETERS",
    "UNSUPPORTED",
    "ParameterError",
    "UnknownParameter",
    "UnsupportedParameter",
    "answering",
    "check_honoured",
    "check_request",
    "honoured_by",
    "requested_options",
]
