"""``S3Store`` against a real S3-compatible HTTP server on loopback (moto's server mode)."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.config import Settings
from airlock.core.digest import Digest
from airlock.errors import IntegrityError, InvalidInput, NotFound, ServiceUnavailable
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock.store import BlobStore, open_store

moto_server = pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is needed")
boto3 = pytest.importorskip("boto3", reason="boto3 (the s3 extra) is needed")

from airlock.store.s3 import PART_SIZE, S3Store  # noqa: E402

MiB = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free loopback port, for this module."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Standard AWS environment credentials; nothing from the developer's ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def s3(endpoint: str, aws_env: None) -> Any:
    """A plain boto3 client, to look at and tamper with the bucket behind the store's back."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"airlock-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(endpoint: str, bucket: str) -> S3Store:
    return S3Store.from_url(
        f"s3://{bucket}/team/blobs-root?endpoint_url={endpoint}&region=us-east-1"
    )


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def pending_uploads(s3: Any, bucket: str) -> list[Any]:
    uploads: list[Any] = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


def drain(reader: Any) -> None:
    """Read in small pieces to the end, as a loader streaming a blob would."""
    while reader.read(100):
        pass


def assert_no_leftovers(s3: Any, bucket: str, store: S3Store) -> None:
    assert keys(s3, bucket, f"{store.prefix}/staging/") == []
    assert pending_uploads(s3, bucket) == []


# -- behaviour shared with the local store ------------------------------------------


def test_large_blob_round_trips_through_a_multipart_upload(
    store: S3Store, s3: Any, bucket: str
) -> None:
    data = os.urandom(2 * PART_SIZE + 12345)  # three parts
    seen: list[int] = []
    digest, new = store.ingest(io.BytesIO(data), on_bytes=seen.append)
    assert digest == sha(data) and new
    assert sum(seen) == len(data)
    assert store.has(digest) and store.size(digest) == len(data)
    assert store.read(digest) == data
    assert store.verify(digest)
    assert list(store.digests()) == [digest]
    hexd = digest.split(":")[1]
    assert keys(s3, bucket) == [f"team/blobs-root/blobs/sha256/{hexd[:2]}/{hexd}"]
    assert_no_leftovers(s3, bucket, store)


@pytest.mark.parametrize("size", [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 10 * MiB + 7])
def test_sizes_around_the_part_boundary_round_trip(
    endpoint: str, bucket: str, s3: Any, size: int
) -> None:
    store = S3Store(bucket, "p", endpoint_url=endpoint, part_size=5 * MiB, concurrency=2)
    data = os.urandom(size)
    digest = store.put(io.BytesIO(data))
    assert digest == sha(data)
    with store.open(digest) as reader:
        chunks = []
        while chunk := reader.read(MiB):
            chunks.append(chunk)
    assert b"".join(chunks) == data
    assert_no_leftovers(s3, bucket, store)


def test_identical_content_is_stored_once(store: S3Store, s3: Any, bucket: str) -> None:
    big = os.urandom(PART_SIZE + 1)
    for data in (b"same", big):
        d1, new1 = store.ingest(io.BytesIO(data))
        d2, new2 = store.ingest(io.BytesIO(data))
        assert d1 == d2 == sha(data)
        assert new1 and not new2
    assert len(keys(s3, bucket, "team/blobs-root/blobs/")) == 2
    assert len(list(store.digests())) == 2
    assert_no_leftovers(s3, bucket, store)


def test_flipped_byte_is_found_by_verify_and_refused_by_read(
    store: S3Store, s3: Any, bucket: str
) -> None:
    digest = store.put_bytes(b"precious weights" * 1000)
    key = store.key_of(digest)
    raw = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    raw[3] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(raw))
    assert store.has(digest)
    assert not store.verify(digest)
    with pytest.raises(IntegrityError, match="damaged"):
        store.read(digest)
    with store.open(digest) as reader, pytest.raises(IntegrityError):
        drain(reader)


def test_missing_blob_is_not_found(store: S3Store) -> None:
    missing = Digest(sha(b"nope"))
    assert not store.has(missing)
    assert not store.verify(missing)
    with pytest.raises(NotFound, match="missing"):
        store.open(missing)
    with pytest.raises(NotFound):
        store.size(missing)
    with pytest.raises(NotFound):
        store.age_seconds(missing)
    store.delete(missing)  # deleting what is not there is not an error


def test_delete_removes_the_blob(store: S3Store, s3: Any, bucket: str) -> None:
    digest = store.put_bytes(b"short-lived")
    assert store.age_seconds(digest) < 3600
    store.delete(digest)
    assert not store.has(digest)
    assert keys(s3, bucket) == []


# -- nothing is half-written ------------------------------------------------------------


class FailingStream(io.RawIOBase):
    """Gives ``fail_after`` bytes, then breaks like a disk or network would."""

    def __init__(self, fail_after: int) -> None:
        self.left = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.left <= 0:
            raise OSError("the source disk went away")
        n = min(len(buf), self.left, MiB)
        buf[:n] = b"x" * n
        self.left -= n
        return n


def test_a_stream_that_fails_midway_leaves_nothing_behind(
    store: S3Store, s3: Any, bucket: str
) -> None:
    with pytest.raises(OSError, match="went away"):
        store.ingest(io.BufferedReader(FailingStream(3 * PART_SIZE + 5)))
    assert keys(s3, bucket) == []
    assert_no_leftovers(s3, bucket, store)


class CopyFails:
    """A real client whose server-side copy fails, as a flaky service would."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def copy_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "InternalError", "Message": "we encountered an internal error"}},
            "CopyObject",
        )


def test_a_failed_copy_removes_the_staging_key_and_says_what_failed(
    endpoint: str, bucket: str, s3: Any
) -> None:
    store = S3Store(bucket, "p", endpoint_url=endpoint, client=CopyFails(s3))
    with pytest.raises(ServiceUnavailable, match="copy_object failed: InternalError") as info:
        store.put(io.BytesIO(os.urandom(PART_SIZE + 1)))
    assert info.value.hint
    assert keys(s3, bucket) == []
    assert_no_leftovers(s3, bucket, store)


def test_blobs_larger_than_a_single_copy_are_copied_part_by_part(
    endpoint: str, bucket: str, s3: Any
) -> None:
    store = S3Store(bucket, "", endpoint_url=endpoint, max_single_copy=6 * MiB)
    data = os.urandom(PART_SIZE * 2 + 3)
    digest, new = store.ingest(io.BytesIO(data))
    assert new and store.read(digest) == data and store.verify(digest)
    assert keys(s3, bucket) == [store.key_of(digest)]
    assert_no_leftovers(s3, bucket, store)


# -- configuration and errors ---------------------------------------------------------------


def test_open_store_understands_s3_urls_and_aws_endpoint_url(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_store(f"s3://{bucket}/a/b/", default_root=tmp_path)
    assert isinstance(store, S3Store) and isinstance(store, BlobStore)
    assert store.prefix == "a/b" and store.endpoint_url == endpoint
    digest = store.put_bytes(b"via the environment")
    assert store.key_of(digest).startswith("a/b/blobs/sha256/")
    assert store.read(digest) == b"via the environment"


def test_bad_urls_are_refused_with_a_hint() -> None:
    with pytest.raises(InvalidInput, match="unknown S3 store option"):
        S3Store.from_url("s3://bucket/p?secret=1")
    with pytest.raises(InvalidInput, match="not an S3 store URL"):
        S3Store.from_url("s3:///no-bucket")


def test_a_missing_bucket_says_how_to_create_it(endpoint: str) -> None:
    store = S3Store.from_url(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}?endpoint_url={endpoint}")
    with pytest.raises(ServiceUnavailable, match="does not exist") as info:
        store.put_bytes(b"x")
    assert "aws s3 mb" in info.value.hint


def test_an_unreachable_endpoint_is_service_unavailable() -> None:
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    store = S3Store("bucket", endpoint_url="http://127.0.0.1:9", client=client)
    with pytest.raises(ServiceUnavailable, match="cannot reach") as info:
        store.has(Digest(sha(b"x")))
    assert "endpoint_url" in info.value.hint


def test_without_boto3_the_error_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    with pytest.raises(InvalidInput, match="boto3") as info:
        S3Store.from_url("s3://bucket/prefix")
    assert info.value.hint == "pip install 'airlock[s3]'"


# -- end to end: a workspace whose blobs live in the bucket ----------------------------------


def test_a_workspace_on_s3_pushes_pulls_and_verifies(
    endpoint: str,
    bucket: str,
    s3: Any,
    tmp_path: Path,
    make_model: Callable[..., Path],
) -> None:
    settings = Settings(
        home=tmp_path / ".airlock",
        store_url=f"s3://{bucket}/airlock?endpoint_url={endpoint}&region=us-east-1",
        user="alice",
    )
    folder = make_model(shards=2, rows=64)
    with Workspace.open(settings, create=True) as ws:
        assert isinstance(ws.store, S3Store)
        registry = Registry(ws)
        pushed = registry.push(folder, name="chat", version="1.0.0", actor=Actor("alice"))
        assert pushed.created
        report = registry.verify()
        assert report.ok and report.checked == len(pushed.manifest.files) + 1  # + the manifest
        pulled = registry.pull("chat@1.0.0", tmp_path / "copy")
        for entry in pushed.manifest.files:
            assert (pulled.dest / entry.path).read_bytes() == (folder / entry.path).read_bytes()
        # A byte changed in the bucket is named by verify.
        victim = pushed.manifest.files[0].digest
        key = ws.store.key_of(victim)
        raw = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        raw[-1] ^= 0xFF
        s3.put_object(Bucket=bucket, Key=key, Body=bytes(raw))
        damaged = registry.verify()
        assert not damaged.ok and list(damaged.damaged) == [victim]
    assert keys(s3, bucket, "airlock/staging/") == []


@pytest.mark.parametrize("size", [1000, 9 << 20])  # one PUT, and a multipart upload
def test_repair_replaces_a_damaged_blob_and_never_a_good_one(
    store: S3Store, s3: Any, bucket: str, size: int
) -> None:
    data = os.urandom(size)
    digest = store.put(io.BytesIO(data))
    assert store.repair(io.BytesIO(data), digest) == "intact"
    s3.put_object(Bucket=bucket, Key=store.key_of(digest), Body=b"x" + data[1:])
    assert not store.verify(digest)
    with pytest.raises(IntegrityError, match="not a copy"):
        store.repair(io.BytesIO(b"other" + data), digest)
    assert not store.verify(digest)
    assert store.repair(io.BytesIO(data), digest) == "repaired"
    assert store.verify(digest) and store.read(digest) == data
    assert_no_leftovers(s3, bucket, store)
