from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.core.digest import Digest
from airlock.errors import IntegrityError, NotFound
from airlock.store import BlobStore, LocalStore, MemoryStore


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return LocalStore(tmp_path / "s") if request.param == "local" else MemoryStore()


def test_put_returns_sha256_and_reads_back(store: BlobStore) -> None:
    data = os.urandom(5 << 20)  # more than one chunk
    seen: list[int] = []
    digest = store.put(io.BytesIO(data), on_bytes=seen.append)
    assert digest == sha(data)
    assert sum(seen) == len(data)
    assert store.has(digest) and store.size(digest) == len(data)
    assert store.read(digest) == data
    assert store.verify(digest)
    assert list(store.digests()) == [digest]


def test_identical_content_is_stored_once(store: BlobStore) -> None:
    d1, new1 = store.ingest(io.BytesIO(b"same"))
    d2, new2 = store.ingest(io.BytesIO(b"same"))
    assert d1 == d2 and new1 and not new2
    assert len(list(store.digests())) == 1


def test_layout_is_content_addressed_and_read_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digest = store.put_bytes(b"hello")
    hexd = digest.split(":")[1]
    path = tmp_path / "blobs" / "sha256" / hexd[:2] / hexd
    assert path.read_bytes() == b"hello"
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list((tmp_path / "blobs" / ".staging").iterdir()) == []


def test_flipped_byte_is_detected_on_verify_and_read(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digest = store.put_bytes(b"precious weights")
    path = store.path_of(digest)
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[3] ^= 0x01
    path.write_bytes(bytes(raw))
    assert not store.verify(digest)
    with pytest.raises(IntegrityError, match="damaged"):
        store.read(digest)


def test_missing_blob_is_not_found(store: BlobStore) -> None:
    missing = Digest(sha(b"nope"))
    assert not store.has(missing)
    with pytest.raises(NotFound):
        store.open(missing)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blobs=st.lists(st.binary(max_size=2048), max_size=8))
def test_any_bytes_round_trip(tmp_path: Path, blobs: list[bytes]) -> None:
    store = LocalStore(tmp_path / "prop")
    for data in blobs:
        digest = store.put_bytes(data)
        assert digest == sha(data)
        assert store.read(digest) == data


class _Broken(io.RawIOBase):
    """A stream that fails after a few chunks, like a network file that drops."""

    def __init__(self, chunks: int) -> None:
        self.left = chunks

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left == 0:
            raise OSError("connection reset")
        self.left -= 1
        buf[: len(buf)] = b"x" * len(buf)
        return len(buf)


def test_a_failing_stream_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(OSError, match="connection reset"):
        store.put(_Broken(3))  # type: ignore[arg-type]
    assert list(store.digests()) == []
    assert list((tmp_path / "blobs" / ".staging").iterdir()) == []


def test_a_failing_write_is_raised_by_the_pipeline(tmp_path: Path) -> None:
    from airlock.store.pipeline import ChunkPipeline

    target = tmp_path / "f"
    target.write_bytes(b"")
    fd = os.open(target, os.O_RDONLY)  # writes to it fail with EBADF
    pipe = ChunkPipeline(fd, direct=False, chunk=4096)
    try:
        i, view = pipe.take()
        view[:4] = b"data"
        view.release()
        pipe.submit(i, 4)
        with pytest.raises(OSError, match="Bad file descriptor"):
            pipe.finish()
    finally:
        pipe.close()
        os.close(fd)


def _damage(store: BlobStore, digest: Digest) -> None:
    """Flip a byte of a stored blob behind the store's back."""
    if isinstance(store, MemoryStore):
        raw = bytearray(store.blobs[digest])
        raw[0] ^= 1
        store.blobs[digest] = bytes(raw)
        return
    assert isinstance(store, LocalStore)
    path = store.path_of(digest)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 1
    path.write_bytes(bytes(raw))


def test_repair_replaces_a_damaged_blob_and_never_a_good_one(store: BlobStore) -> None:
    data = os.urandom(5 << 20)
    digest = store.put(io.BytesIO(data))
    assert store.repair(io.BytesIO(data), digest) == "intact"  # a good blob is left alone
    _damage(store, digest)
    assert not store.verify(digest)
    assert store.repair(io.BytesIO(data), digest) == "repaired"
    assert store.verify(digest) and store.read(digest) == data
    store.delete(digest)
    assert store.repair(io.BytesIO(data), digest) == "restored"
    assert store.verify(digest)


def test_repair_refuses_bytes_of_another_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"the original")
    _damage(store, digest)
    with pytest.raises(IntegrityError, match="not a copy of that blob"):
        store.repair(io.BytesIO(b"something else"), digest)
    assert not store.verify(digest)  # still damaged: nothing was written
    assert sorted(store.digests()) == [digest]
    if isinstance(store, LocalStore):
        assert list(store.staging.iterdir()) == []


def test_a_repaired_local_blob_is_read_only_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digest = store.put_bytes(b"weights")
    _damage(store, digest)
    store.repair(io.BytesIO(b"weights"), digest)
    assert not store.path_of(digest).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
