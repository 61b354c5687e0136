"""OpenAI's Responses API (``POST /v1/responses``) on the chat-completions request path.

Newer OpenAI SDK code defaults to ``client.responses.create``. The gateway serves its
text subset: ``input`` as a string or a list of messages (``input_text`` parts; the
assistant's earlier ``output_text`` parts too), ``instructions`` (a system message),
``max_output_tokens``, ``temperature``, ``top_p``, ``user``, ``text.format``
(``json_object`` / ``json_schema``: the chat ``response_format``, honoured or refused
like there) and ``stream``. A request is translated into a chat-completions body
(:func:`to_chat_body`) and served by the same routing, guardrails, telemetry and
fallback as ``/v1/chat/completions``; the answer is rendered back
(:func:`response_body`, or :class:`ResponseEvents` for the typed SSE events the SDK
reads: ``response.created``, ``response.output_text.delta``,
``response.output_text.done``, ``response.completed``...).

The response's ``id`` is the gateway's signed response id, so ``POST /v1/feedback``
takes it as it takes a chat completion's. Tools, ``previous_response_id`` and
``conversation`` (the gateway stores no responses), background mode and reasoning
settings are refused with a 400 naming the field; unknown fields likewise.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airlock.errors import InvalidInput
from airlock.gateway.parameters import ParameterError, UnknownParameter, UnsupportedParameter

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_HARMLESS = frozenset(
    {
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
        "prompt_cache_key",
        "safety_identifier",
        "truncation",
        "include",
        "stream_options",
    }
)
_NO_OPS: Mapping[str, tuple[Any, ...]] = {
    "tools": ([],),
    "tool_choice": ("none", "auto"),
    "background": (False,),
    "reasoning": ({},),
    "max_tool_calls": (),
}
_UNSUPPORTED = {
    "tools": "tool calling is not routed by the Airlock gateway",
    "tool_choice": "tool calling is not routed by the Airlock gateway",
    "max_tool_calls": "tool calling is not routed by the Airlock gateway",
    "previous_response_id": "the gateway stores no responses; send the conversation in 'input'",
    "conversation": "the gateway stores no conversations; send the conversation in 'input'",
    "background": "background responses are not supported",
    "reasoning": "reasoning settings are not supported",
    "prompt": "stored prompts are not supported",
    "top_logprobs": "the gateway's Responses API returns text only",
}
_OWN = frozenset(
    {"model", "input", "instructions", "max_output_tokens", "temperature", "top_p"}
    | {"stream", "user", "text"}
)
_ROLES = frozenset({"system", "developer", "user", "assistant"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def to_chat_body(data: Any) -> dict[str, Any]:
    """The chat-completions body that serves a Responses request; refusals name the field."""
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    for name, value in data.items():
        if name in _OWN or name in _HARMLESS or value is None:
            continue
        if name in _UNSUPPORTED:
            if any(value == v for v in _NO_OPS.get(name, ())):
                continue
            raise UnsupportedParameter(
                name,
                f"'{name}' is not supported: {_UNSUPPORTED[name]}",
                hint=f"remove '{name}' from the request",
            )
        raise UnknownParameter(name, f"Unrecognized request argument supplied: {name}")
    messages = _messages(data.get("input"))
    instructions = data.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ParameterError("instructions", "'instructions' must be a string")
        messages.insert(0, {"role": "system", "content": instructions})
    body: dict[str, Any] = {"model": data.get("model"), "messages": messages}
    for ours, theirs in (
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
    ):
        if data.get(ours) is not None:
            body[theirs] = data[ours]
    stream = data.get("stream", False)
    if stream is not None:
        body["stream"] = stream
        if stream is True:
            body["stream_options"] = {"include_usage": True}
    fmt = _response_format(data.get("text"))
    if fmt is not None:
        body["response_format"] = fmt
    return body


def _messages(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise ParameterError(
            "input", "'input' must be a string or a non-empty list of {role, content} messages"
        )
    out = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise ParameterError(where, f"{where} must be a message object")
        kind = item.get("type", "message")
        if kind != "message":
            raise UnsupportedParameter(
                where, f"{where} is a {str(kind)[:40]!r} item; the gateway takes messages only"
            )
        role = item.get("role")
        if role not in _ROLES:
            raise ParameterError(
                f"{where}.role",
                f"{where} has the unknown role {str(role)[:40]!r}",
                hint="use system, developer, user or assistant",
            )
        content = item.get("content")
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                    raise UnsupportedParameter(
                        f"{where}.content[{j}]",
                        f"{where}.content[{j}] must be an input_text part (text only)",
                    )
                text = part.get("text")
                if not isinstance(text, str):
                    raise ParameterError(
                        f"{where}.content[{j}].text", f"{where}.content[{j}].text must be a string"
                    )
                texts.append(text)
            content = "".join(texts)
        elif not isinstance(content, str):
            raise ParameterError(
                f"{where}.content", f"{where}.content must be a string or a list of text parts"
            )
        out.append({"role": role, "content": content})
    return out


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict) or not isinstance(text.get("format", {}), dict):
        raise ParameterError("text", "'text' must be an object such as {'format': {...}}")
    unknown = sorted(set(text) - {"format", "verbosity"})
    if unknown:
        raise UnknownParameter(f"text.{unknown[0]}", f"Unrecognized argument: text.{unknown[0]}")
    if text.get("verbosity") not in (None, "medium"):
        raise UnsupportedParameter("text.verbosity", "'text.verbosity' is not supported")
    fmt = text.get("format") or {"type": "text"}
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise ParameterError(
        "text.format.type", "'text.format.type' must be text, json_object or json_schema"
    )


# -- answers ----------------------------------------------------------------------------


def _status(finish: str | None) -> tuple[str, dict[str, str] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    tokens_in = int(usage.get("prompt_tokens") or 0)
    tokens_out = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": tokens_in,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens_in + tokens_out,
    }


def _message_item(rid: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text)]
    return {
        "id": "msg_" + rid.rpartition("-")[2][-32:],
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(
    request: Mapping[str, Any],
    rid: str,
    created: float,
    model: str,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "store": False,
    }


def response_body(request: Mapping[str, Any], completion: bytes) -> bytes:
    """The Responses object for the gateway's chat-completion answer ``completion``."""
    chat = json.loads(completion)
    choice = chat["choices"][0]
    status, incomplete = _status(choice.get("finish_reason"))
    text = choice["message"].get("content") or ""
    item = _message_item(chat["id"], text, status)
    obj = _response(
        request,
        chat["id"],
        chat["created"],
        chat["model"],
        status=status,
        output=[item],
        usage=_usage(chat.get("usage")),
        incomplete=incomplete,
    )
    return _dumps(obj).encode()


class ResponseEvents:
    """Turns the gateway's chat-completion SSE stream into the Responses API's typed events.

    Reads ``chunks`` to its end (the gateway counts the answer in telemetry after its
    last event), whatever the client does with the events."""

    def __init__(self, request: Mapping[str, Any], rid: str) -> None:
        self.request = request
        self.rid = rid
        self.seq = 0
        self.created = time.time()
        self.model = str(request.get("model"))

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return f"event: {kind}\ndata: ".encode() + _dumps(payload).encode() + b"\n\n"

    def _snapshot(self, status: str, output: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
        return _response(self.request, self.rid, self.created, self.model, status=status,
                         output=output, **kw)  # fmt: skip

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        item_id = _message_item(self.rid, None, "in_progress")["id"]
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        parts: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] | None = None
        started = False
        async for raw in chunks:
            for line in raw.split(b"\n"):
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if "error" in data:
                    for event in self._failed(data["error"], started, parts):
                        yield event
                    started = True
                    finish = "error"
                    continue
                if not started:
                    started = True
                    self.model = str(data.get("model") or self.model)
                    for event in self._opening(item_id):
                        yield event
                for choice in data.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        parts.append(piece)
                        yield self._event(
                            "response.output_text.delta", **where, delta=piece, logprobs=[]
                        )
                    finish = choice.get("finish_reason") or finish
                if data.get("usage"):
                    usage = _usage(data["usage"])
        if finish == "error":
            return
        if not started:
            for event in self._opening(item_id):
                yield event
        text = "".join(parts)
        status, incomplete = _status(finish)
        item = _message_item(self.rid, text, status)
        yield self._event("response.output_text.done", **where, text=text, logprobs=[])
        yield self._event("response.content_part.done", **where, part=_text_part(text))
        yield self._event("response.output_item.done", output_index=0, item=item)
        final = self._snapshot(status, [item], usage=usage, incomplete=incomplete)
        done = "response.incomplete" if status == "incomplete" else "response.completed"
        yield self._event(done, response=final)

    def _opening(self, item_id: str) -> list[bytes]:
        item = _message_item(self.rid, None, "in_progress")
        return [
            self._event("response.created", response=self._snapshot("in_progress", [])),
            self._event("response.in_progress", response=self._snapshot("in_progress", [])),
            self._event("response.output_item.added", output_index=0, item=item),
            self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=0,
                content_index=0,
                part=_text_part(""),
            ),
        ]

    def _failed(self, error: Mapping[str, Any], started: bool, parts: list[str]) -> list[bytes]:
        message = str(error.get("message") or "the model failed")
        events = [] if started else [
            self._event("response.created", response=self._snapshot("in_progress", []))
        ]  # fmt: skip
        events.append(self._event("error", code=error.get("code"), message=message, param=None))
        failed = self._snapshot(
            "failed",
            [_message_item(self.rid, "".join(parts), "incomplete")] if parts else [],
            error={"code": "server_error", "message": message},
        )
        events.append(self._event("response.failed", response=failed))
        return events


__all__ = ["ResponseEvents", "response_body", "to_chat_body"]
