"""The OpenAI wire format: parse ``/v1/chat/completions`` and ``/v1/completions`` bodies,
build responses, stream chunks (SSE) and errors exactly as the official SDKs expect.

Parsing is hand-written on purpose: a pydantic model per request costs more than
the rest of the gateway's own work, and every rejection still names the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airlock.core.bounded_json import loads_bounded
from airlock.core.masking import mask_secrets
from airlock.core.request_limits import (
    GatewayLimits,
    KiB,
    check_body_size,
    check_messages,
    check_prompt_tokens,
    clip,
    loads_json,
)
from airlock.errors import AirlockError, InvalidInput
from airlock.gateway.parameters import ParameterError, requested_options
from airlock.gateway.routing import split_model
from airlock.runtime.base import Completion, RequestKind

# Message roles a chat request may use; "developer" (newer OpenAI models) is "system" here.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class OpenAIRequest:
    kind: RequestKind
    model: str
    service: str
    pin: str | None
    messages: tuple[dict[str, Any], ...] = ()
    prompt: str = ""
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """All the text the client sent (for logs)."""
        if self.kind == "completion":
            return self.prompt
        return "\n".join(str(m.get("content") or "") for m in self.messages)


_NO_LIMITS = GatewayLimits()
_MAX_NAME = 256  # 'model' and 'user': longer is not a name (and is never echoed back)
# Bodies up to this size are parsed whole (``json.loads``: fastest for ordinary requests);
# larger ones member by member, their message list counted as it is read (and, in the
# gateway, in a worker process: :mod:`airlock.gateway.body_parse`).
INLINE_BYTES = 256 * KiB


def load_body(body: bytes, limits: GatewayLimits, *, listed: str | None) -> Any:
    """The JSON of a request body within the nesting limit; ``listed`` names the member
    that lists messages (``messages``, a Responses ``input``), counted as it is read."""
    if len(body) <= INLINE_BYTES:
        return loads_json(body, max_depth=limits.default.max_json_depth)
    counted = {listed: (limits.largest_messages, "max_messages")} if listed else {}
    return loads_bounded(body, max_depth=limits.default.max_json_depth, max_items=counted)


def parse_request(
    body: bytes, kind: RequestKind, *, limits: GatewayLimits = _NO_LIMITS
) -> OpenAIRequest:
    """The request, within ``limits`` (nesting, messages; the service's body size and
    prompt tokens): every refusal is an ``InvalidInput`` (413 for the size) naming the limit."""
    data = load_body(body, limits, listed="messages" if kind == "chat" else None)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model or len(model) > _MAX_NAME:
        raise InvalidInput("'model' is required: a service name, e.g. 'chat' or 'chat@1.2.0'")
    service, pin = split_model(model)
    own = limits.for_service(service)
    check_body_size(len(body), own.max_body_bytes)
    options = requested_options(data, kind)  # refuses unsupported parameters, by name
    n = data.get("n", 1)
    if n not in (1, None) or isinstance(n, bool):
        raise ParameterError("n", "'n' must be 1: one choice per request")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInput("'stream' must be true or false")
    stream_options = data.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise InvalidInput("'stream_options' must be an object")
    user = data.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > _MAX_NAME):
        raise InvalidInput(f"'user' must be a string of at most {_MAX_NAME} characters")
    messages: tuple[dict[str, Any], ...] = ()
    prompt = ""
    if kind == "chat":
        raw = data.get("messages")
        if isinstance(raw, list):
            check_messages(len(raw), own.max_messages)
        messages = _messages(raw)
    else:
        prompt = _prompt(data.get("prompt"))
    req = OpenAIRequest(
        kind=kind,
        model=model,
        service=service,
        pin=pin,
        messages=messages,
        prompt=prompt,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        user=user or None,
        options=options,
    )
    if own.max_prompt_tokens is not None:
        check_prompt_tokens(req.text(), own.max_prompt_tokens, service=service)
    return req


def _messages(raw: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise InvalidInput(f"messages[{i}] must be an object")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise ParameterError(f"messages[{i}].role", f"messages[{i}].role must be a string")
        if role not in ROLES:
            raise ParameterError(
                f"messages[{i}].role",
                f"messages[{i}] has the unknown role {clip(role, 40)!r}",
                hint="use system, developer, user, assistant or tool",
            )
        if role == "developer":
            role = "system"
        content = m.get("content")
        if isinstance(content, list):
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
                raise InvalidInput(f"messages[{i}].content parts must be text parts")
            content = "".join(t for t in texts if t)
        elif content is not None and not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content must be a string or a list of text parts")
        msg: dict[str, Any] = {"role": role, "content": content or ""}
        if isinstance(m.get("name"), str):
            msg["name"] = m["name"]
        out.append(msg)
    return tuple(out)


def _prompt(raw: Any) -> str:
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        return raw[0]
    if not isinstance(raw, str):
        raise InvalidInput("'prompt' must be a string (one prompt per request)")
    return raw


# -- responses ------------------------------------------------------------------------


def usage(c: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
    }


def completion_body(
    kind: RequestKind, rid: str, created: int, model: str, c: Completion, text: str
) -> bytes:
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": c.finish_reason,
            "logprobs": c.logprobs,
        }
        obj = "chat.completion"
    else:
        choice = {
            "index": 0,
            "text": text,
            "finish_reason": c.finish_reason,
            "logprobs": c.logprobs,
        }
        obj = "text_completion"
    return _dumps(
        {
            "id": rid,
            "object": obj,
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(c),
        }
    ).encode()


def chunk(
    kind: RequestKind,
    rid: str,
    created: int,
    model: str,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
    usage_of: Completion | None = None,
) -> bytes:
    """One SSE event. ``usage_of`` makes the final usage-only chunk (no choices)."""
    if kind == "chat":
        obj = "chat.completion.chunk"
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        obj = "text_completion"
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
    payload: dict[str, Any] = {
        "id": rid,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [] if usage_of is not None else [choice],
    }
    if usage_of is not None:
        payload["usage"] = usage(usage_of)
    return b"data: " + _dumps(payload).encode() + b"\n\n"


_OPENAI_CODES = {"unauthorized": "invalid_api_key"}  # what OpenAI's SDKs expect for a 401


def error_payload(exc: AirlockError, *, status: int | None = None) -> dict[str, Any]:
    status = status or exc.status
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 404:
        kind = "not_found_error"
    code = getattr(exc, "kind", None) or _OPENAI_CODES.get(exc.code, exc.code)
    message = mask_secrets(exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
    message = clip(message, 1000)  # never a whole request echoed back
    param = getattr(exc, "param", None)
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_body(exc: AirlockError, *, status: int | None = None) -> bytes:
    return _dumps(error_payload(exc, status=status)).encode()


def error_event(exc: AirlockError) -> bytes:
    return b"data: " + error_body(exc) + b"\n\n"


def dumps(value: Any) -> bytes:
    return _dumps(value).encode()


__all__ = [
    "DONE",
    "ROLES",
    "OpenAIRequest",
    "chunk",
    "completion_body",
    "dumps",
    "error_body",
    "error_event",
    "error_payload",
    "load_body",
    "parse_request",
]
