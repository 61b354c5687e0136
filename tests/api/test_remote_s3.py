"""A remote push to a server whose store is S3 with pre-signed uploads: the bytes go
straight to the bucket (none through the server), and the server hashes them before
they become a blob."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import BodyCounter, Server

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.client import Client
from airlock.config import Settings
from airlock.core.digest import digest_bytes
from airlock.errors import IntegrityError
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is needed")


@pytest.fixture
def s3_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "XDG_CACHE_HOME": str(tmp_path / "client-cache"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"airlock-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/team?endpoint_url={endpoint}&region=us-east-1&presign=1"
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", store_url=url), create=True)
    try:
        yield ws
    finally:
        ws.close()
        moto.stop()


def test_presigned_push_bypasses_the_server(s3_workspace: Workspace, tmp_path: Path) -> None:
    ws = s3_workspace
    tokens = Tokens(ws)
    tokens.bootstrap("alice")
    carol = tokens.create(user="carol", role="author", actor=Actor("alice", "admin")).secret
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_bytes(b"w" * 300_000)
    (folder / "config.json").write_text('{"arch": "tiny"}')
    counter = BodyCounter(create_app(ws, authenticate=token_authenticator(ws)))
    with Server(counter) as server, Client(server.url, carol) as api:
        result = api.push(folder, name="tiny", version="1.0.0")
        assert result.created and result.bytes_new == 300_000 + len('{"arch": "tiny"}')
        assert counter.upload_bytes == 0  # not one byte of the files passed through the server
        assert ws.store.read(digest_bytes(b"w" * 300_000)) == b"w" * 300_000
        api.pull("tiny@1.0.0", tmp_path / "out")
        assert (tmp_path / "out" / "weights.txt").read_bytes() == b"w" * 300_000

        # bytes that are not what the digest names never become a blob
        claimed = digest_bytes(b"the real weights")
        batch = api._post("/api/v1/blobs/batch", {"digests": [{"digest": claimed, "size": 16}]})
        signed = batch["missing"][0]["upload_url"]
        assert signed
        assert httpx.put(signed, content=b"the fake weights").status_code == 200
        with pytest.raises(IntegrityError, match="refused"):
            api._post(f"/api/v1/blobs/{claimed}/complete")
        assert not ws.store.has(claimed)
