"""``S3Store``: blobs in an S3-compatible bucket, ``<prefix>/blobs/sha256/<2 hex>/<64 hex>``.

URL: ``s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=us-east-1``
(``AWS_ENDPOINT_URL`` and the standard AWS credential chain are honoured too).

Writing a blob, whose digest is only known once the stream has been read:

- a stream shorter than one part (8 MiB) is read whole, hashed, and written
  with a single PUT straight to its final key (skipped if the key exists).
  The digest is known before the upload, so no staging key is needed, and a
  PUT is atomic: the object appears whole or not at all;
- a longer stream is hashed while it is uploaded as a multipart upload to
  ``<prefix>/staging/<uuid>`` (``concurrency`` parts in flight, each with its
  own ``ChecksumSHA256``; at most ``concurrency + 1`` parts held in memory),
  then copied server-side to its final key unless that key already exists
  (identical content is stored once), and the staging key is deleted. Any
  failure aborts the multipart upload and removes the staging key, so nothing
  is half-written. Only a killed process leaves staging behind: a bucket
  lifecycle rule on ``staging/`` (expire objects and abort incomplete uploads
  after a day) cleans that up.

Every read is verified against the digest (``VerifyingReader``); ``verify``
downloads and re-hashes. botocore errors become ``NotFound`` or
``ServiceUnavailable`` (with a hint) at this boundary.

boto3 is imported lazily: the base install works without it
(``pip install 'airlock[s3]'``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, BinaryIO, NoReturn, cast
from urllib.parse import parse_qs, urlsplit

from airlock.core.digest import Digest, hex_of, short
from airlock.errors import AirlockError, IntegrityError, InvalidInput, NotFound, ServiceUnavailable
from airlock.store.base import CHUNK, ProgressFn, RepairOutcome, VerifyingReader, wrong_bytes

PART_SIZE = 8 << 20  # 8 MiB: also the largest blob written with a single PUT
MAX_SINGLE_COPY = 5 << 30  # CopyObject's limit; larger blobs are copied part by part
COPY_PART_SIZE = 1 << 30
_HEX = frozenset("0123456789abcdef")


class S3Store:
    """A ``BlobStore`` on S3, MinIO, Ceph RGW, R2 or any S3-compatible service."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        part_size: int = PART_SIZE,
        concurrency: int = 4,
        max_single_copy: int = MAX_SINGLE_COPY,
        presign: bool = False,
    ) -> None:
        if not bucket:
            raise InvalidInput(
                "an S3 store URL needs a bucket", hint="use s3://bucket/prefix in AIRLOCK_STORE_URL"
            )
        if part_size < 5 << 20:
            raise InvalidInput(f"part size {part_size} is below S3's minimum of 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.max_single_copy = max_single_copy
        self.presign = presign  # hand uploaders pre-signed URLs (remote push), see presign_upload
        self._root = f"{self.prefix}/" if self.prefix else ""
        where = f"?endpoint_url={endpoint_url}" if endpoint_url else ""
        self.url = f"s3://{bucket}/{self.prefix}{where}"
        self._client = client if client is not None else _make_client(endpoint_url, region)

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """``s3://bucket/prefix?endpoint_url=...&region=...``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidInput(
                f"not an S3 store URL: {url!r}",
                hint="use s3://bucket/prefix?endpoint_url=http://host:9000&region=us-east-1",
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"endpoint_url", "region", "presign"})
        if unknown:
            raise InvalidInput(
                f"unknown S3 store option(s): {', '.join(unknown)}",
                hint="the store URL accepts endpoint_url, region and presign; credentials come from "
                "the standard AWS environment variables or profile",
            )
        endpoint = query.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL") or None
        presign = query.get("presign", "0").lower() in ("1", "true", "yes")
        return cls(
            parts.netloc,
            parts.path,
            endpoint_url=endpoint,
            region=query.get("region"),
            presign=presign,
        )

    # -- keys ------------------------------------------------------------------
    def key_of(self, digest: Digest) -> str:
        h = hex_of(digest)
        return f"{self._root}blobs/sha256/{h[:2]}/{h}"

    def _staging_key(self) -> str:
        return f"{self._root}staging/{uuid.uuid4().hex}"

    def _upload_key(self, digest: Digest) -> str:
        return f"{self._root}staging/upload-{hex_of(digest)}"

    # -- pre-signed uploads (a remote push whose bytes never pass through the server) ----------
    def presign_upload(self, digest: Digest, size: int, *, expires: int = 3600) -> str | None:
        """A URL to PUT blob ``digest`` to a staging key (None: not enabled, or too large).

        The bytes are not a blob yet: ``complete_upload`` hashes them and only then
        copies them to the blob's key.
        """
        if not self.presign or size > MAX_SINGLE_COPY:
            return None
        url: str = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._upload_key(digest), "ContentLength": size},
            ExpiresIn=expires,
        )
        return url

    def complete_upload(self, digest: Digest) -> bool:
        """Verify a pre-signed upload against its digest and make it the blob (False: none)."""
        key = self._upload_key(digest)
        try:
            reply = self._call("get_object", Bucket=self.bucket, Key=key, blob=digest)
        except NotFound:
            return False
        try:
            hasher = hashlib.sha256()
            size = 0
            while chunk := reply["Body"].read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
            if f"sha256:{hasher.hexdigest()}" != digest:
                raise IntegrityError(
                    f"the uploaded bytes do not hash to {short(digest)}: the blob was refused",
                    hint="upload the file again (it changed, or the bytes were damaged)",
                )
            if not self._exists(digest):
                self._copy(key, digest, size)
        finally:
            self._delete_key(key)
        return True

    # -- writing -----------------------------------------------------------------
    def put(self, stream: BinaryIO, *, on_bytes: ProgressFn | None = None) -> Digest:
        return self.ingest(stream, on_bytes=on_bytes)[0]

    def put_bytes(self, data: bytes) -> Digest:
        return self.put(io.BytesIO(data))

    def ingest(
        self, stream: BinaryIO, *, on_bytes: ProgressFn | None = None
    ) -> tuple[Digest, bool]:
        """Store the stream; return its digest and whether the blob is new to the store."""
        return self._write(stream, on_bytes, lambda digest: not self._exists(digest))

    def repair(
        self, stream: BinaryIO, expected: Digest, *, on_bytes: ProgressFn | None = None
    ) -> RepairOutcome:
        """Put back blob ``expected`` from good bytes if it is damaged or missing (see BlobStore)."""
        existed = self._exists(expected)
        if existed and self.verify(expected):
            return "intact"

        def wanted(digest: Digest) -> bool:
            if digest != expected:
                raise wrong_bytes(digest, expected)
            return True

        self._write(stream, on_bytes, wanted)
        return "repaired" if existed else "restored"

    def _write(
        self,
        stream: BinaryIO,
        on_bytes: ProgressFn | None,
        should_write: Callable[[Digest], bool],
    ) -> tuple[Digest, bool]:
        """Hash and upload; ``should_write(digest)`` decides, once the digest is known."""
        hasher = hashlib.sha256()
        first = _read_full(stream, self.part_size)
        hasher.update(first)
        if on_bytes is not None and first:
            on_bytes(len(first))
        if len(first) < self.part_size:
            digest = Digest(f"sha256:{hasher.hexdigest()}")
            if not should_write(digest):
                return digest, False
            self._call(
                "put_object",
                Bucket=self.bucket,
                Key=self.key_of(digest),
                Body=first,
                ChecksumSHA256=_b64(hasher.digest()),
            )
            return digest, True
        staging = self._staging_key()
        size = self._upload_multipart(staging, first, stream, hasher, on_bytes)
        digest = Digest(f"sha256:{hasher.hexdigest()}")
        try:
            new = should_write(digest)
            if new:
                self._copy(staging, digest, size)
        except BaseException:
            with contextlib.suppress(Exception):
                self._delete_key(staging)
            raise
        self._delete_key(staging)
        return digest, new

    def _upload_multipart(
        self,
        key: str,
        first: bytes,
        stream: BinaryIO,
        hasher: Any,
        on_bytes: ProgressFn | None,
    ) -> int:
        """Upload ``first`` and the rest of ``stream`` to ``key``; abort on any failure."""
        upload_id = self._call(
            "create_multipart_upload", Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
        )["UploadId"]
        done: list[dict[str, Any]] = []
        size = 0
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-part")
        try:
            in_flight: deque[Future[dict[str, Any]]] = deque()
            number, data = 1, first
            while data:
                size += len(data)
                in_flight.append(pool.submit(self._upload_part, key, upload_id, number, data))
                while len(in_flight) > self.concurrency:
                    done.append(in_flight.popleft().result())
                number += 1
                data = _read_full(stream, _part_size(self.part_size, number))
                hasher.update(data)
                if on_bytes is not None and data:
                    on_bytes(len(data))
            done.extend(f.result() for f in in_flight)
            pool.shutdown()
            self._call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
            )
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no part may land after the abort
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return size

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        checksum = _b64(hashlib.sha256(data).digest())
        reply = self._call(
            "upload_part",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumSHA256=checksum,
        )
        return {"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": checksum}

    def _copy(self, staging: str, digest: Digest, size: int) -> None:
        """Server-side copy of the staged upload to the blob's key, checked where S3 says how."""
        key = self.key_of(digest)
        source = {"Bucket": self.bucket, "Key": staging}
        if size > self.max_single_copy:
            self._multipart_copy(source, key, size)
            return
        reply = self._call(
            "copy_object",
            Bucket=self.bucket,
            Key=key,
            CopySource=source,
            ChecksumAlgorithm="SHA256",
        )
        # A single copy makes S3 compute the full-object SHA-256: it must be our digest.
        stored = reply.get("CopyObjectResult", {}).get("ChecksumSHA256")
        if stored and "-" not in stored and stored != _b64(bytes.fromhex(hex_of(digest))):
            self._delete_key(key)
            raise IntegrityError(
                f"blob {short(digest)} changed on its way into the bucket",
                hint="retry the push; if it keeps failing, check the network and the endpoint",
            )

    def _multipart_copy(self, source: dict[str, str], key: str, size: int) -> None:
        upload_id = self._call(
            "create_multipart_upload", Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
        )["UploadId"]
        try:
            part_size = max(COPY_PART_SIZE, -(-size // 10_000))
            parts = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                reply = self._call(
                    "upload_part_copy",
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                result = reply["CopyPartResult"]
                part = {"PartNumber": number, "ETag": result["ETag"]}
                if result.get("ChecksumSHA256"):
                    part["ChecksumSHA256"] = result["ChecksumSHA256"]
                parts.append(part)
            self._call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def delete(self, digest: Digest) -> None:
        """Remove a blob (garbage collection, or undoing a push that failed)."""
        self._delete_key(self.key_of(digest))

    def _delete_key(self, key: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=key)

    # -- reading -----------------------------------------------------------------
    def open(self, digest: Digest) -> BinaryIO:
        reply = self._call("get_object", Bucket=self.bucket, Key=self.key_of(digest), blob=digest)
        return cast(BinaryIO, VerifyingReader(cast(BinaryIO, _Body(reply["Body"], self)), digest))

    def read(self, digest: Digest) -> bytes:
        with self.open(digest) as reader:
            return reader.read()

    def has(self, digest: Digest) -> bool:
        return self._exists(digest)

    def size(self, digest: Digest) -> int:
        return int(self._head(digest)["ContentLength"])

    def age_seconds(self, digest: Digest) -> float:
        """Seconds since the blob was written (the object's LastModified)."""
        modified: datetime = self._head(digest)["LastModified"]
        return (datetime.now(UTC) - modified).total_seconds()

    def verify(self, digest: Digest) -> bool:
        """Download and re-hash the blob; False when it is missing or its bytes changed."""
        try:
            reply = self._call(
                "get_object", Bucket=self.bucket, Key=self.key_of(digest), blob=digest
            )
        except NotFound:
            return False
        body = _Body(reply["Body"], self)
        hasher = hashlib.sha256()
        try:
            while chunk := body.read(CHUNK):
                hasher.update(chunk)
        finally:
            body.close()
        return f"sha256:{hasher.hexdigest()}" == digest

    def digests(self) -> Iterator[Digest]:
        """Every blob in the bucket under the prefix, in digest order (S3 lists keys sorted)."""
        base = f"{self._root}blobs/sha256/"
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
            if token:
                args["ContinuationToken"] = token
            page = self._call("list_objects_v2", **args)
            for obj in page.get("Contents", []):
                rest = str(obj["Key"])[len(base) :]
                sub, _, name = rest.partition("/")
                if len(name) == 64 and set(name) <= _HEX and sub == name[:2]:
                    yield Digest(f"sha256:{name}")
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def _head(self, digest: Digest) -> dict[str, Any]:
        reply: dict[str, Any] = self._call(
            "head_object", Bucket=self.bucket, Key=self.key_of(digest), blob=digest
        )
        return reply

    def _exists(self, digest: Digest) -> bool:
        try:
            self._head(digest)
        except NotFound:
            return False
        return True

    # -- errors ------------------------------------------------------------------
    def _call(self, operation: str, *, blob: Digest | None = None, **kwargs: Any) -> Any:
        """Call one S3 operation; botocore's errors become Airlock's."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            self._raise(exc, operation, blob)

    def _raise(self, exc: Exception, operation: str, blob: Digest | None) -> NoReturn:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        where = f"s3://{self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")) or code
            if code == "NoSuchBucket":
                raise ServiceUnavailable(
                    f"the bucket {where} does not exist",
                    hint=f"create it (e.g. `aws s3 mb s3://{self.bucket}`) or fix AIRLOCK_STORE_URL",
                ) from exc
            if code in {"404", "NoSuchKey", "NotFound"} and blob is not None:
                raise NotFound(
                    f"blob {short(blob)} is missing from the store {self.url}",
                    hint="run `airlock verify` to see which releases are affected",
                ) from exc
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise ServiceUnavailable(
                    f"{where} refused {operation}: {message}",
                    hint="check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
                    "AWS_PROFILE) and the bucket policy",
                ) from exc
            if code in {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}:
                raise IntegrityError(
                    f"{where} rejected {operation}: the bytes were damaged in transit ({code})",
                    hint="retry; if it keeps failing, check the network path to the endpoint",
                ) from exc
            raise ServiceUnavailable(
                f"{where}: {operation} failed: {code}: {message}",
                hint="check the endpoint and retry",
            ) from exc
        if isinstance(exc, NoCredentialsError):
            raise ServiceUnavailable(
                f"no AWS credentials to reach {where}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            ) from exc
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            raise ServiceUnavailable(
                f"cannot reach {where}: {exc}",
                hint="check the endpoint_url in AIRLOCK_STORE_URL (or AWS_ENDPOINT_URL) and "
                "that the object store is running",
            ) from exc
        if isinstance(exc, BotoCoreError):
            raise ServiceUnavailable(
                f"{where}: {operation} failed: {exc}", hint="check the endpoint and retry"
            ) from exc
        raise exc


class _Body:
    """A downloaded object's stream whose botocore errors become ``ServiceUnavailable``."""

    def __init__(self, raw: Any, store: S3Store) -> None:
        self._raw = raw
        self._store = store

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._raw.read(None if n < 0 else n)
        except AirlockError:
            raise
        except Exception as exc:
            self._store._raise(exc, "get_object", None)
        return data

    def close(self) -> None:
        self._raw.close()


def _make_client(endpoint_url: str | None, region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise InvalidInput(
            "the S3 store needs boto3, which is not installed",
            hint="pip install 'airlock[s3]'",
        ) from exc
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=64,
        # MinIO, Ceph and friends on a plain host:port want path-style addressing.
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


def _part_size(base: int, number: int) -> int:
    """Double the part size every 1000 parts, so 10 000 parts reach S3's 5 TiB object limit."""
    return base << min((number - 1) // 1000, 9)


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        data = stream.read(n - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
