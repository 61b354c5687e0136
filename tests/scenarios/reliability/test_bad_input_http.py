"""Bad input against `airlock serve` on a loopback port: every case a clean 4xx in the edge's
own error shape (OpenAI's on /v1, Airlock's elsewhere), never a 500, on SQLite and PostgreSQL.

Oversized bodies are also sent on raw sockets, so what is proven is what a server sees:
a declared 100 MB body is refused before a byte of it is sent, and a chunked body is cut
off at the limit rather than buffered.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.demo import scenario
from airlock.serve import AirlockApp, RunningServer, ServeSettings
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace

MiB = 1 << 20
HUGE = "1180591620717411303424"  # 2**70: past every 64-bit column
ID_MAX = (1 << 31) - 1  # row ids are SQL INTEGER: 32-bit on PostgreSQL
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass(frozen=True)
class Served:
    url: str
    admin: str
    viewer: str


@pytest.fixture
def served(workspace: Workspace, tmp_path: Path) -> Iterator[Served]:
    tokens = Tokens(workspace)
    boot = tokens.bootstrap("alice")
    assert boot is not None
    admin = Actor("alice", "admin")
    viewer = tokens.create(user="vic", role="viewer", actor=admin).secret
    plan = scenario.RELEASES[0]
    Registry(workspace).push(
        scenario.build_folder(tmp_path / "build", plan),
        name=scenario.MODEL,
        version=plan.version,
        actor=Actor("carol", "author"),
    )
    Serving(workspace).create(scenario.SERVICE, f"lumen@{plan.version}", actor=admin)
    settings = ServeSettings(port=0, sync_seconds=0.5, run_controller=False, graceful_seconds=2)
    running = RunningServer(AirlockApp(workspace, settings)).start()
    try:
        running.wait_ready()
        yield Served(running.url, boot.secret, viewer)
    finally:
        running.stop()


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    status: int
    body: Any = None  # bytes, str, or JSON
    as_: str = "admin"  # admin, viewer or anonymous
    shape: str = "airlock"  # airlock, openai or any
    says: str = ""  # a word the message must contain
    headers: dict[str, str] = field(default_factory=dict)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": scenario.SERVICE, "messages": [{"role": "user", "content": "hi"}], **extra}


CASES = [
    # -- sizes, nesting, counts on the gateway (OpenAI shape)
    Case(
        "chat body over 1 MiB",
        "POST",
        "/v1/chat/completions",
        413,
        chat(pad="x" * (MiB + 10)),
        shape="openai",
        says="max_body_bytes",
    ),
    Case(
        "completions body over 1 MiB",
        "POST",
        "/v1/completions",
        413,
        {"model": scenario.SERVICE, "prompt": "x" * (MiB + 10)},
        shape="openai",
    ),
    Case(
        "feedback body over 1 MiB",
        "POST",
        "/v1/feedback",
        413,
        {"id": "x" * (MiB + 10), "score": 1},
        shape="openai",
    ),
    Case(
        "chat nested 100,000 deep",
        "POST",
        "/v1/chat/completions",
        400,
        '{"model": "lumen-support", "messages": ' + DEEP + "}",
        shape="openai",
        says="max_json_depth",
    ),
    Case(
        "feedback nested 100,000 deep",
        "POST",
        "/v1/feedback",
        400,
        '{"id": ' + DEEP + "}",
        shape="openai",
        says="max_json_depth",
    ),
    Case(
        "chat nested in a message",
        "POST",
        "/v1/chat/completions",
        400,
        chat(messages=[{"role": "user", "content": json.loads("[" * 40 + "]" * 40)}]),
        shape="openai",
        says="max_json_depth",
    ),
    Case(
        "1,001 messages",
        "POST",
        "/v1/chat/completions",
        400,
        chat(messages=[{"role": "user", "content": "a"}] * 1001),
        shape="openai",
        says="max_messages",
    ),
    Case(
        "a model name of 100 KB",
        "POST",
        "/v1/chat/completions",
        400,
        {"model": "m" * 100_000, "messages": [{"role": "user", "content": "hi"}]},
        shape="openai",
    ),
    Case("not JSON", "POST", "/v1/chat/completions", 400, b"\xff\xfe{", shape="openai"),
    Case(
        "a temperature of 100 KB",
        "POST",
        "/v1/chat/completions",
        400,
        chat(temperature="9" * 100_000),
        shape="openai",
        says="temperature",
    ),
    Case("a release ref of 20 KB", "GET", "/api/v1/releases/" + "r" * 20_000, 400),
    Case("a policy name of 20 KB", "GET", "/api/v1/policies/" + "p" * 20_000, 404),
    Case("a model of 20 KB", "GET", "/api/v1/models/" + "m" * 20_000 + "/releases", 404),
    # -- sizes on the API and the dashboard (Airlock shape)
    Case(
        "API body over 1 MiB",
        "PUT",
        "/api/v1/policies/lumen",
        413,
        {"document": "x" * (MiB + 10), "reason": "r"},
        says="max_body_bytes",
    ),
    Case(
        "dashboard form over 64 KiB",
        "POST",
        "/login",
        413,
        b"token=" + b"x" * (100 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    # -- integers past 64 bits
    Case("huge rollout id", "GET", f"/api/v1/rollouts/{HUGE}", 400, says="rollout_id"),
    Case("largest rollout id", "GET", f"/api/v1/rollouts/{ID_MAX}", 404),
    Case("rollout id past 32 bits", "GET", f"/api/v1/rollouts/{ID_MAX + 1}", 400),
    Case("huge evaluation id", "GET", f"/api/v1/evaluations/{HUGE}", 400, says="run_id"),
    Case("largest evaluation id", "GET", f"/api/v1/evaluations/{ID_MAX}", 404),
    Case("largest policy version", "GET", f"/api/v1/policies/lumen?version={ID_MAX}", 404),
    Case(
        "largest audit cursor",
        "GET",
        f"/api/v1/audit/events?after_seq={(1 << 63) - 1}",
        200,
        shape="any",
    ),
    Case(
        "huge policy version", "GET", f"/api/v1/policies/lumen?version={HUGE}", 400, says="version"
    ),
    Case(
        "huge audit cursor", "GET", f"/api/v1/audit/events?after_seq={HUGE}", 400, says="after_seq"
    ),
    Case(
        "huge audit page on the dashboard",
        "GET",
        f"/audit?before={HUGE}",
        303,
        shape="any",
        as_="anonymous",
    ),
    # -- who is calling
    Case("no token", "GET", "/api/v1/models", 401, as_="anonymous", says="token"),
    Case(
        "not a token",
        "GET",
        "/api/v1/models",
        401,
        as_="anonymous",
        headers={"authorization": "Bearer nope"},
    ),
    Case(
        "wrong role",
        "PUT",
        "/api/v1/policies/lumen",
        403,
        {"document": "stages: {}", "reason": "r"},
        as_="viewer",
    ),
    # -- methods nobody serves
    *(
        Case(f"TRACE {path}", "TRACE", path, 405, shape="any")
        for path in (
            "/v1/chat/completions",
            "/v1/models",
            "/metrics",
            "/api/v1/models",
            "/openapi.json",
            "/docs",
            "/",
            "/login",
            "/healthz",
            "/readyz",
        )
    ),
    Case("DELETE a chat", "DELETE", "/v1/chat/completions", 405, shape="any"),
    Case("PATCH the API", "PATCH", "/api/v1/models", 405),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clean_4xx(served: Served, case: Case) -> None:
    headers = dict(case.headers)
    if case.as_ != "anonymous":
        secret = served.admin if case.as_ == "admin" else served.viewer
        headers.setdefault("authorization", f"Bearer {secret}")
    if isinstance(case.body, bytes | str):
        content: bytes | None = case.body.encode() if isinstance(case.body, str) else case.body
        headers.setdefault("content-type", "application/json")
    else:
        content = None if case.body is None else json.dumps(case.body).encode()
        if content is not None:
            headers["content-type"] = "application/json"
    with httpx.Client(base_url=served.url, timeout=30) as http:
        r = http.request(case.method, case.path, content=content, headers=headers)
    assert r.status_code == case.status, r.text[:300]
    if case.status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    if case.shape == "any":
        return
    error = r.json()["error"]
    if case.shape == "openai":
        assert {"message", "type", "code"} <= set(error)
        assert error["type"] in ("invalid_request_error", "not_found_error")
    else:
        assert set(error) == {"code", "message", "hint"}
    assert case.says in error["message"]
    assert len(r.content) < 2000  # no echo of the input


def _raw(url: str, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send a request by hand; stop sending once the server answers; return the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        answer = b""
        for chunk in chunks:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(chunk)
            except BlockingIOError:
                continue
            except OSError:  # the server closed after answering: read what it said
                break
        sock.settimeout(30)
        try:
            while b"\r\n\r\n" not in answer and (more := sock.recv(65536)):
                answer += more
        except OSError:
            pass
        return answer


def test_a_declared_100_mb_body_is_refused_before_it_is_sent(served: Served) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 104857600\r\n\r\n"
    )
    answer = _raw(served.url, head, iter([]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"max_body_bytes" in answer
    with httpx.Client(base_url=served.url) as http:  # and the server is fine
        assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/policies/lumen"])
def test_a_chunked_body_is_cut_off_at_the_limit(served: Served, path: str) -> None:
    method = b"PUT" if path.startswith("/api") else b"POST"
    head = (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"content-type: application/json\r\ntransfer-encoding: chunked\r\n"
        b"authorization: Bearer " + served.admin.encode() + b"\r\n\r\n"
    )
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = (chunk for _ in range(100 * 16))  # up to 100 MiB if nobody stopped it
    answer = _raw(served.url, head, sent)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    with httpx.Client(base_url=served.url) as http:
        assert http.get("/healthz").status_code == 200
