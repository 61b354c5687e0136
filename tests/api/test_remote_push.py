"""Remote push and pull through a real API server on loopback: only missing blobs travel."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import BodyCounter, Lumen, Server

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.client import Client
from airlock.core.digest import digest_bytes
from airlock.errors import Forbidden, IntegrityError, NotFound
from airlock.services.gc import plan_gc
from airlock.services.identity import Actor
from airlock.services.registry import Registry

MiB = 1 << 20


@pytest.fixture
def served(
    lumen: Lumen, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Server, BodyCounter]]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "client-cache"))
    counter = BodyCounter(create_app(lumen.ws, authenticate=token_authenticator(lumen.ws)))
    with Server(counter) as server:
        yield server, counter


def model(folder: Path, shards: int = 3, size: int = MiB) -> Path:
    folder.mkdir(parents=True)
    for i in range(shards):
        (folder / f"shard-{i}.bin.txt").write_bytes(bytes([i + 1]) * size + b"%d" % i)
    (folder / "config.json").write_text('{"arch": "tiny"}')
    old = time.time() - 60  # older than the hash cache's racy window
    for p in folder.iterdir():
        os.utime(p, (old, old))
    return folder


def test_push_twice_then_one_changed_file(
    served: tuple[Server, BodyCounter], lumen: Lumen, tmp_path: Path
) -> None:
    server, counter = served
    folder = model(tmp_path / "remote-folder")
    total = sum(p.stat().st_size for p in folder.iterdir())
    with Client(server.url, lumen.tokens["carol"]) as api:
        first = api.push(folder, name="tiny", version="1.0.0")
        assert first.created and first.files == 4
        assert first.bytes_new == total == counter.upload_bytes
        again = api.push(folder, name="tiny", version="1.0.0")
        assert not again.created and again.digest == first.digest
        assert again.bytes_new == 0 and counter.upload_bytes == total  # nothing travelled
        assert again.bytes_read == 0  # the client's hash cache knew every file
        changed = folder / "shard-1.bin.txt"
        changed.write_bytes(b"new weights" * 1000)
        second = api.push(folder, name="tiny", version="1.0.1", parent="tiny@1.0.0")
        assert second.bytes_new == changed.stat().st_size
        assert second.bytes_read == changed.stat().st_size  # only it was hashed again
        assert counter.upload_bytes == total + changed.stat().st_size
        pulled = api.pull("tiny@1.0.1", tmp_path / "out")
    assert pulled.files == 4
    for p in folder.iterdir():
        assert (tmp_path / "out" / p.name).read_bytes() == p.read_bytes()
    local = Registry(lumen.ws).show("tiny@1.0.1")
    assert local.row.digest == second.digest
    assert local.manifest.lineage.parent == "tiny@1.0.0"


def test_interrupted_upload_resumes(
    served: tuple[Server, BodyCounter], lumen: Lumen, tmp_path: Path
) -> None:
    server, counter = served
    folder = tmp_path / "big"
    folder.mkdir()
    data = bytes(range(256)) * (8 * MiB // 256)
    (folder / "weights.txt").write_bytes(data)
    digest = digest_bytes(data)
    host, port = server.url.removeprefix("http://").split(":")
    sent = 4 * MiB + 1000
    with (  # the connection drops mid-PUT, once the server has taken in 4 MiB
        socket.create_connection((host, int(port))) as sock,
        Client(server.url, lumen.tokens["carol"]) as api,
    ):
        sock.sendall(
            f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {lumen.tokens['carol']}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        sock.sendall(data[:sent])
        deadline = time.monotonic() + 10
        while api.upload_offset(digest) < 4 * MiB and time.monotonic() < deadline:
            time.sleep(0.05)
    with Client(server.url, lumen.tokens["carol"]) as api:
        kept = api.upload_offset(digest)
        assert 4 * MiB <= kept <= sent
        assert not lumen.ws.store.has(digest)  # a partial upload is not a blob
        before = counter.upload_bytes
        result = api.push(folder, name="big", version="1.0.0")
    assert result.bytes_new == len(data) - kept
    assert counter.upload_bytes - before == len(data) - kept
    assert lumen.ws.store.read(digest) == data


def test_gc_removes_an_abandoned_upload(
    served: tuple[Server, BodyCounter], lumen: Lumen, tmp_path: Path
) -> None:
    server, _ = served
    data = b"x" * (5 * MiB)
    digest = digest_bytes(data)
    host, port = server.url.removeprefix("http://").split(":")
    with (
        socket.create_connection((host, int(port))) as sock,
        Client(server.url, lumen.tokens["carol"]) as api,
    ):
        sock.sendall(
            f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {lumen.tokens['carol']}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        sock.sendall(data[: 4 * MiB + 1000])
        deadline = time.monotonic() + 10
        while api.upload_offset(digest) < 4 * MiB and time.monotonic() < deadline:
            time.sleep(0.05)  # the server writes what it took in 4 MiB steps
    with Client(server.url, lumen.tokens["carol"]) as api:
        assert api.upload_offset(digest) >= 4 * MiB
        plan = plan_gc(lumen.ws, staging_min_age=0)
        assert [f.name for f in plan.staging] == [f"upload-{digest.removeprefix('sha256:')}"]
        plan.execute(lumen.ws, Actor("alice", "admin"))
        assert api.upload_offset(digest) == 0


def test_tampered_upload_is_refused(served: tuple[Server, BodyCounter], lumen: Lumen) -> None:
    server, _ = served
    claimed = digest_bytes(b"the real weights")
    response = httpx.put(
        f"{server.url}/api/v1/blobs/{claimed}",
        content=b"the fake weights",
        headers={**lumen.auth("carol"), "Content-Range": "bytes 0-15/16"},
    )
    assert response.status_code == 422  # the request was wrong; nothing stored is damaged
    assert response.json()["error"]["code"] == "integrity_error"
    assert not lumen.ws.store.has(claimed)
    with Client(server.url, lumen.tokens["carol"]) as api:
        assert api.upload_offset(claimed) == 0  # nothing kept


def test_errors_match_local_ones(
    served: tuple[Server, BodyCounter], lumen: Lumen, tmp_path: Path
) -> None:
    server, _ = served
    reg = Registry(lumen.ws)
    with pytest.raises(NotFound) as local:
        reg.pull("lumen@9.9.9", tmp_path / "a")
    with Client(server.url, lumen.tokens["vic"]) as api:
        with pytest.raises(NotFound) as remote:
            api.pull("lumen@9.9.9", tmp_path / "b")
        assert (remote.value.message, remote.value.hint) == (local.value.message, local.value.hint)
        with pytest.raises(Forbidden):  # a viewer may not push, remotely either
            api.push(model(tmp_path / "m"), name="tiny", version="1.0.0")
    assert not (tmp_path / "b").exists()


def test_commit_needs_every_blob(served: tuple[Server, BodyCounter], lumen: Lumen) -> None:
    server, _ = served
    with Client(server.url, lumen.tokens["carol"]) as api:
        body = {
            "name": "ghost",
            "version": "1.0.0",
            "files": [{"path": "w.txt", "digest": digest_bytes(b"never sent"), "size": 10}],
        }
        with pytest.raises(NotFound, match="is not in the store"):
            api._post("/api/v1/releases", body)


def test_damaged_download_is_refused(
    served: tuple[Server, BodyCounter], lumen: Lumen, tmp_path: Path
) -> None:
    server, _ = served
    manifest = Registry(lumen.ws).manifest("lumen@1.0.0")
    victim = manifest.files[0]
    path = lumen.ws.store.path_of(victim.digest)  # type: ignore[attr-defined]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with Client(server.url, lumen.tokens["vic"]) as api, pytest.raises(IntegrityError):
        api.pull("lumen@1.0.0", tmp_path / "out")
    assert not (tmp_path / "out").exists()
