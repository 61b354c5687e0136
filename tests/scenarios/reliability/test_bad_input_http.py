"""Bad input against `airlock serve` on a loopback port: every case a clean 4xx in the edge's
own error shape (OpenAI's on /v1, Airlock's elsewhere), never a 500, on SQLite and PostgreSQL.

Oversized bodies are also sent on raw sockets, so what is proven is what a server sees:
a declared 100 MB body is refused before a byte of it is sent, and a chunked body is cut
off at the limit rather than buffered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import time
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
BLOB = "sha256:" + "ab" * 32  # a blob nobody uploaded


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
        "feedback nested 30,000 deep",
        "POST",
        "/v1/feedback",
        400,
        '{"id": ' + "[" * 30_000 + "]" * 30_000 + "}",  # within the 64 KiB of a feedback
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
    Case(
        "an integer of 5,000 digits",
        "POST",
        "/v1/chat/completions",
        400,
        '{"model": "lumen-support", "max_tokens": ' + "9" * 5000 + "}",
        shape="openai",
        says="not valid JSON",
    ),
    # -- /v1/responses and /v1/feedback
    Case(
        "responses body over 1 MiB",
        "POST",
        "/v1/responses",
        413,
        {"model": scenario.SERVICE, "input": "x" * (MiB + 10)},
        shape="openai",
        says="max_body_bytes",
    ),
    Case(
        "responses nested 100,000 deep",
        "POST",
        "/v1/responses",
        400,
        '{"model": "lumen-support", "input": ' + DEEP + "}",
        shape="openai",
        says="max_json_depth",
    ),
    Case(
        "responses of 1,001 input messages",
        "POST",
        "/v1/responses",
        400,
        {"model": scenario.SERVICE, "input": [{"role": "user", "content": "a"}] * 1001},
        shape="openai",
        says="max_messages",
    ),
    Case("responses not JSON", "POST", "/v1/responses", 400, b'{"model": ', shape="openai"),
    Case(
        "responses input of 300,000 numbers",
        "POST",
        "/v1/responses",
        400,
        {"model": scenario.SERVICE, "input": [0] * 300_000},
        shape="openai",
    ),
    Case(
        "feedback body over 64 KiB",
        "POST",
        "/v1/feedback",
        413,
        {"id": "x" * 70_000, "score": 1},
        shape="openai",
        says="max_body_bytes",
    ),
    Case("feedback not JSON", "POST", "/v1/feedback", 400, b"{'id': 1}", shape="openai"),
    # -- blob uploads (Airlock shape)
    Case("blob batch not JSON", "POST", "/api/v1/blobs/batch", 400, b'{"digests": ['),
    Case(
        "blob batch of 300,000 numbers",
        "POST",
        "/api/v1/blobs/batch",
        400,
        {"digests": [0] * 300_000},
        says="more than 100000 JSON values",
    ),
    Case(
        "blob batch over 1 MiB",
        "POST",
        "/api/v1/blobs/batch",
        413,
        {"digests": [{"digest": BLOB, "size": 1}] * 20_000},
        says="max_body_bytes",
    ),
    Case(
        "blob batch nested 100,000 deep",
        "POST",
        "/api/v1/blobs/batch",
        400,
        '{"digests": ' + DEEP + "}",
    ),
    Case(
        "blob batch with a bad digest",
        "POST",
        "/api/v1/blobs/batch",
        400,
        {"digests": [{"digest": "md5:abc", "size": 1}]},
        says="md5:abc",
    ),
    Case("blob upload to a bad digest", "PUT", "/api/v1/blobs/sha256:zz", 400, b"x"),
    Case(
        "blob upload of 2 TiB",
        "PUT",
        f"/api/v1/blobs/{BLOB}",
        413,
        b"x",
        headers={"content-range": f"bytes 0-0/{2 << 40}"},
    ),
    Case(
        "blob upload with a broken range",
        "PUT",
        f"/api/v1/blobs/{BLOB}",
        400,
        b"x",
        headers={"content-range": "bytes zero-one/two"},
        says="Content-Range",
    ),
    # -- services and rollouts (Airlock shape)
    Case("service create not JSON", "POST", "/api/v1/services", 400, b'{"name": "x",'),
    Case(
        "service create of 300,000 numbers",
        "POST",
        "/api/v1/services",
        400,
        {"name": [0] * 300_000, "stable": "lumen@1.0.0"},
    ),
    Case(
        "rollout spec nested 100,000 deep",
        "POST",
        "/api/v1/services/lumen-support/rollouts",
        400,
        '{"candidate": "lumen@1.1.0", "spec": ' + DEEP + "}",
    ),
    Case(
        "rollout spec of 100,000 steps",
        "POST",
        "/api/v1/services/lumen-support/rollouts",
        400,
        {"candidate": "lumen@1.1.0", "spec": {"strategy": "canary", "steps": [{}] * 100_000}},
    ),
    Case(
        "rollout spec of 40,000 invalid steps",  # within the JSON values: the spec says why
        "POST",
        "/api/v1/services/lumen-support/rollouts",
        400,
        {"candidate": "lumen@1.1.0", "spec": {"strategy": "canary", "steps": [{}] * 40_000}},
        says="invalid rollout spec",  # at once: 20 problems named, the rest counted
    ),
    Case(
        "rollout plan of 30,000 steps",
        "POST",
        "/api/v1/services/lumen-support/rollout-plan",
        400,
        {"spec": {"strategy": "canary", "steps": [{"weight_pct": 1}] * 30_000}},
    ),
    Case(
        "rollout control not JSON",
        "POST",
        "/api/v1/services/lumen-support/rollout/pause",
        400,
        b"[[[",
    ),
    Case(
        "judge settings of 300,000 numbers",
        "PUT",
        "/api/v1/services/lumen-support/quality",
        400,
        {"quality": {"scorers": [0] * 300_000}},
    ),
    Case(
        "transcripts settings not JSON",
        "PUT",
        "/api/v1/services/lumen-support/transcripts",
        400,
        b"{",
    ),
    Case(
        "opt-out of 150,000 users",
        "POST",
        "/api/v1/services/lumen-support/opt-outs",
        400,
        {"user": ["u"] * 150_000},
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


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/responses", "/v1/feedback", "/api/v1/blobs/batch"]
)
def test_a_declared_100_mb_body_is_refused_before_it_is_sent(served: Served, path: str) -> None:
    head = (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + served.admin.encode() + b"\r\n"
        b"content-length: 104857600\r\n\r\n"
    )
    answer = _raw(served.url, head, iter([]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"max_body_bytes" in answer
    with httpx.Client(base_url=served.url) as http:  # and the server is fine
        assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/responses",
        "/api/v1/policies/lumen",
        "/api/v1/blobs/batch",
        "/api/v1/services/lumen-support/rollouts",
    ],
)
def test_a_chunked_body_is_cut_off_at_the_limit(served: Served, path: str) -> None:
    method = b"PUT" if path.endswith("/lumen") else b"POST"
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


def _upload_state(served: Served, digest: str) -> tuple[int, int]:
    """(bytes of a partial upload kept, status of GET /api/v1/blobs/{digest})."""
    auth = {"authorization": f"Bearer {served.admin}"}
    with httpx.Client(base_url=served.url, headers=auth) as http:
        kept = http.get(f"/api/v1/uploads/{digest}").json()
        assert kept["complete"] is False
        return kept["received"], http.get(f"/api/v1/blobs/{digest}").status_code


def _put_head(served: Served, digest: str, framing: bytes) -> bytes:
    return (
        b"PUT /api/v1/blobs/" + digest.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"authorization: Bearer " + served.admin.encode() + b"\r\n" + framing + b"\r\n"
    )


def test_a_blob_upload_of_wrong_bytes_is_refused_and_nothing_is_kept(served: Served) -> None:
    claimed = "sha256:" + hashlib.sha256(b"the real weights").hexdigest()
    auth = {"authorization": f"Bearer {served.admin}"}
    with httpx.Client(base_url=served.url, headers=auth) as http:
        wrong = http.put(
            f"/api/v1/blobs/{claimed}",
            content=b"the fake weights",
            headers={"content-range": "bytes 0-15/16"},
        )
        assert wrong.status_code == 422, wrong.text[:300]
        assert wrong.json()["error"]["code"] == "integrity_error"
        more = http.put(
            f"/api/v1/blobs/{claimed}",
            content=b"the real weights, and more",
            headers={"content-range": "bytes 0-15/16"},
        )
        assert more.status_code == 400 and "more bytes than" in more.json()["error"]["message"]
    assert _upload_state(served, claimed) == (0, 404)


def test_a_chunked_100_mb_blob_upload_declared_small_is_cut_off(served: Served) -> None:
    digest = BLOB
    head = _put_head(
        served, digest, b"content-range: bytes 0-9/10\r\ntransfer-encoding: chunked\r\n"
    )
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw(served.url, head, (chunk for _ in range(100 * 16)))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"more bytes than the 10 declared" in answer
    assert _upload_state(served, digest) == (0, 404)


def test_a_cut_100_mb_blob_upload_leaves_no_blob(served: Served) -> None:
    """A dropped upload keeps its bytes for a resume, but no blob is visible until every byte
    has arrived and hashes to its name."""
    size = 100 * MiB
    framing = f"content-range: bytes 0-{size - 1}/{size}\r\ncontent-length: {size}\r\n"
    head = _put_head(served, BLOB, framing.encode())
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for _ in range(5 * 16):  # 5 MiB of the 100 MiB, then the connection drops
            sock.sendall(b"y" * 65536)
    received, blob = 0, 0
    for _ in range(100):  # the server notices the drop and keeps what it wrote
        received, blob = _upload_state(served, BLOB)
        if received:
            break
        time.sleep(0.05)
    assert blob == 404
    assert 0 <= received <= 5 * MiB
