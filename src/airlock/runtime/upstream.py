"""The upstream runtime: any OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI...).

A release's ``config.json`` names the server::

    {"runtime": "upstream", "base_url": "http://127.0.0.1:8000/v1", "model": "llama-3-8b",
     "api_key_env": "VLLM_API_KEY", "timeout_s": 30, "connect_timeout_s": 2,
     "max_connections": 256, "extra_params": ["top_k", "repetition_penalty"]}

The request's OpenAI parameters (:data:`~airlock.runtime.base.UPSTREAM_PARAMETERS`:
penalties, ``logit_bias``, ``response_format``, ``logprobs``...) are forwarded as
given, and so are the server's own extensions named in ``extra_params``; the
choice's ``logprobs`` come back in the :class:`Completion`.

Requests go through one keep-alive connection pool per release: Airlock's lean
HTTP/1.1 pool by default (:mod:`airlock.runtime.http11`, ~10x less CPU per call
than httpx, see there), or ``httpx.AsyncClient`` with ``"http_client": "httpx"``
(HTTP proxies from the environment, anything httpcore supports). Streaming is
passed through as it arrives: each upstream SSE event becomes one
:class:`Delta`; the upstream is asked for a usage chunk so token counts are
exact when it supports that, and estimated otherwise.

``user:password@`` in ``base_url`` is sent as HTTP Basic auth (unless an API key is
set) and never shown. What an upstream answers when it fails never reaches a
client as it came: the client gets a short message and an error id, and the
detail goes to the ``airlock.runtime.upstream`` log under that id, with every
credential masked (:mod:`airlock.core.masking`) — an upstream that echoes its
request headers cannot leak the API key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx

from airlock.core.masking import mask_secrets, safe_url
from airlock.errors import InvalidInput
from airlock.runtime.base import (
    UPSTREAM_PARAMETERS,
    Completion,
    Delta,
    FinishReason,
    GenerationRequest,
    PromptStyle,
    RuntimeFailure,
    RuntimeTimeout,
    count_tokens,
)
from airlock.runtime.http11 import HTTPError, HTTPPool, HTTPTimeout

log = logging.getLogger("airlock.runtime.upstream")

_CLIENT_ERRORS = frozenset({400, 413, 422})
# Fields the gateway itself sets in an upstream request: never a release's extra_params.
_OWN_FIELDS = frozenset(
    {"model", "messages", "prompt", "stream", "stream_options", "user", "n", "tools"}
)
_SHOWN_MESSAGE = 200  # an upstream's own 4xx message is shown (masked) up to this length
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
}


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_connections: int = 256
    http_client: str = "airlock"
    extra_params: frozenset[str] = frozenset()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> UpstreamConfig:
        env = os.environ if env is None else env
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            shown = safe_url(base_url)[:200] if isinstance(base_url, str) else type(base_url)
            raise InvalidInput(
                f"upstream release: base_url must be an http(s) URL, got {shown!r}",
                hint='set "base_url": "http://host:port/v1" in the release\'s config.json',
            )
        model = config.get("model", "default")
        if not isinstance(model, str) or not model:
            raise InvalidInput("upstream release: model must be a non-empty string")
        key_env = config.get("api_key_env")
        api_key = env.get(key_env) if isinstance(key_env, str) else None
        if isinstance(key_env, str) and not api_key:
            raise InvalidInput(
                f"upstream release: environment variable {key_env} (api_key_env) is not set",
                hint=f"export {key_env}=... before starting the gateway",
            )
        try:
            timeout = float(config.get("timeout_s", 30.0))
            connect = float(config.get("connect_timeout_s", 5.0))
            conns = int(config.get("max_connections", 256))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"upstream release: bad timeout or pool size: {exc}") from exc
        if timeout <= 0 or connect <= 0 or conns < 1:
            raise InvalidInput("upstream release: timeouts and max_connections must be positive")
        client = config.get("http_client", "airlock")
        if client not in ("airlock", "httpx"):
            raise InvalidInput(
                f"upstream release: http_client must be airlock or httpx, not {client!r}"
            )
        extra = config.get("extra_params", [])
        if not isinstance(extra, list) or not all(isinstance(p, str) and p for p in extra):
            raise InvalidInput(
                "upstream release: extra_params must be a list of parameter names",
                hint='e.g. "extra_params": ["top_k", "repetition_penalty"]',
            )
        own = sorted(_OWN_FIELDS.intersection(extra))
        if own:
            raise InvalidInput(
                f"upstream release: extra_params cannot name {', '.join(own)}: "
                "the gateway sets those fields itself"
            )
        return cls(
            base_url.rstrip("/"),
            model,
            api_key,
            timeout,
            connect,
            conns,
            client,
            frozenset(extra),
        )


class _Streamed(Protocol):
    status: int

    async def aread(self) -> bytes: ...

    def lines(self) -> AsyncIterator[str]: ...


class _Client(Protocol):
    def stream(self, path: str, body: bytes) -> AbstractAsyncContextManager[_Streamed]: ...

    async def aclose(self) -> None: ...


class _LeanClient:
    def __init__(self, config: UpstreamConfig, headers: dict[str, str]) -> None:
        self.pool = HTTPPool(
            config.base_url,
            headers=headers,
            max_connections=config.max_connections,
            connect_timeout_s=config.connect_timeout_s,
        )

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[_Streamed]:
        try:
            async with self.pool.stream("POST", path, body) as response:
                yield response
        except HTTPTimeout as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except HTTPError as exc:
            raise httpx.ConnectError(str(exc)) from exc

    async def aclose(self) -> None:
        await self.pool.aclose()


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self._response = response

    async def aread(self) -> bytes:
        return await self._response.aread()

    def lines(self) -> AsyncIterator[str]:
        return self._response.aiter_lines()


class _HttpxClient:
    def __init__(
        self,
        config: UpstreamConfig,
        headers: dict[str, str],
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
                keepalive_expiry=4.0,
            ),
            transport=transport,
        )

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[_Streamed]:
        async with self.client.stream("POST", path, content=body) as response:
            yield _HttpxResponse(response)

    async def aclose(self) -> None:
        await self.client.aclose()


class UpstreamRuntime:
    kind = "upstream"
    prompt_style: PromptStyle = "messages"

    def __init__(
        self, config: UpstreamConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.config = config
        self.accepts = UPSTREAM_PARAMETERS | config.extra_params
        self.where = safe_url(config.base_url)  # what logs and messages name
        headers = {"content-type": "application/json"}
        parts = urlsplit(config.base_url)
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        elif parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self._secrets = (config.api_key, parts.password, headers.get("authorization"))
        plain = replace(config, base_url=self.where)  # credentials go only in the header
        self._client: _Client = (
            _HttpxClient(plain, headers, transport)
            if config.http_client == "httpx" or transport is not None
            else _LeanClient(plain, headers)
        )

    def _body(self, request: GenerationRequest, *, stream: bool) -> bytes:
        body: dict[str, Any] = dict(request.forward)
        body["model"] = self.config.model
        if request.kind == "chat":
            body["messages"] = list(request.messages)
        else:
            body["prompt"] = request.prompt
        if request.user:
            body["user"] = request.user
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body, ensure_ascii=False).encode()

    @staticmethod
    def _path(request: GenerationRequest) -> str:
        return "/chat/completions" if request.kind == "chat" else "/completions"

    async def generate(self, request: GenerationRequest) -> Completion:
        try:
            async with self._client.stream(
                self._path(request), self._body(request, stream=False)
            ) as response:
                status, content = response.status, await response.aread()
        except httpx.HTTPError as exc:
            raise self._transport_failure(exc) from exc
        if status != 200:
            raise self._status_failure(status, content)
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            if request.kind == "chat":
                text = choice["message"].get("content") or ""
            else:
                text = choice.get("text") or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            eid = self._report(f"sent a malformed completion ({exc!r})", content)
            raise RuntimeFailure(
                f"the upstream model server sent a malformed completion (error id {eid})",
                kind="bad_response",
            ) from exc
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or count_tokens(request.prompt)),
            completion_tokens=int(usage.get("completion_tokens") or count_tokens(text)),
            finish_reason=_FINISH.get(str(choice.get("finish_reason")), "stop"),
            logprobs=logprobs if isinstance(logprobs := choice.get("logprobs"), dict) else None,
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        parts: list[str] = []
        finish: FinishReason = "stop"
        usage: Mapping[str, Any] = {}
        try:
            async with self._client.stream(
                self._path(request), self._body(request, stream=True)
            ) as response:
                if response.status != 200:
                    raise self._status_failure(response.status, await response.aread())
                done = False
                async for line in response.lines():
                    if done or not line.startswith("data:"):
                        continue  # after [DONE]: read to the end so the connection is reused
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        continue
                    text, reason, chunk_usage = self._parse_chunk(payload, request.kind)
                    if chunk_usage:
                        usage = chunk_usage
                    if reason:
                        finish = _FINISH.get(reason, "stop")
                    if text:
                        parts.append(text)
                        yield Delta(text)
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
            if parts and failure.kind != "timeout":
                failure = RuntimeFailure(failure.message, kind="stream_interrupted")
            raise failure from exc
        text = "".join(parts)
        yield Delta(
            "",
            final=Completion(
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens") or count_tokens(request.prompt)),
                completion_tokens=int(usage.get("completion_tokens") or count_tokens(text)),
                finish_reason=finish,
            ),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- failures: a short message for the client, the detail in the log ------------------
    def _report(self, what: str, body: bytes | str = b"") -> str:
        """Log the detail of a failure under a new error id (credentials masked)."""
        eid = "upstream-" + secrets.token_hex(6)
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        log.warning(
            "%s: %s %s%s",
            eid,
            self.where,
            mask_secrets(what, self._secrets),
            f": {mask_secrets(text[:4000], self._secrets)}" if text else "",
        )
        return eid

    def _parse_chunk(self, payload: str, kind: str) -> tuple[str, str | None, Mapping[str, Any]]:
        try:
            data = json.loads(payload)
            if "error" in data and not data.get("choices"):
                eid = self._report("sent an error in its stream", payload)
                raise RuntimeFailure(
                    f"the upstream model server failed mid-stream (error id {eid})",
                    kind="upstream_5xx",
                )
            usage = data.get("usage") or {}
            choices = data.get("choices") or []
            if not choices:
                return "", None, usage
            choice = choices[0]
            if kind == "chat":
                text = (choice.get("delta") or {}).get("content") or ""
            else:
                text = choice.get("text") or ""
            return text, choice.get("finish_reason"), usage
        except (ValueError, AttributeError, TypeError) as exc:
            eid = self._report("sent a malformed stream chunk", payload)
            raise RuntimeFailure(
                f"the upstream model server sent a malformed stream (error id {eid})",
                kind="bad_response",
            ) from exc

    def _transport_failure(self, exc: httpx.HTTPError) -> RuntimeFailure:
        eid = self._report(f"could not be reached: {type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return RuntimeTimeout(
                f"the upstream model server did not answer in time (error id {eid})"
            )
        return RuntimeFailure(
            f"cannot reach the upstream model server (error id {eid})",
            kind="connect",
            hint="operators: the gateway's log has the detail under this id; check that "
            "the upstream server is running and the release's base_url is right",
        )

    def _status_failure(self, status: int, body: bytes) -> Exception:
        eid = self._report(f"answered HTTP {status}", body)
        if status in _CLIENT_ERRORS:
            said = _error_message(body)
            shown = mask_secrets(said, self._secrets) if said else ""
            detail = f": {shown}" if shown and len(shown) <= _SHOWN_MESSAGE else ""
            return InvalidInput(
                f"the upstream model server refused the request{detail} (error id {eid})"
            )
        kind = "upstream_5xx" if status >= 500 else "upstream_4xx"
        return RuntimeFailure(
            f"the upstream model server answered HTTP {status} (error id {eid})",
            kind=kind,
            hint="operators: the gateway's log has the upstream's answer under this id",
        )


def _error_message(body: bytes) -> str | None:
    """The upstream's own ``error.message`` (or ``error``) when it is a string, else None."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None


__all__ = ["UpstreamConfig", "UpstreamRuntime"]
