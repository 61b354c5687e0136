"""``MemoryStore``: the in-memory twin of ``LocalStore`` for unit tests of the layers above."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from typing import BinaryIO, cast

from airlock.core.digest import Digest, short
from airlock.errors import NotFound
from airlock.store.base import ProgressFn, RepairOutcome, VerifyingReader, wrong_bytes


class MemoryStore:
    def __init__(self) -> None:
        self.url = "memory://"
        self.blobs: dict[Digest, bytes] = {}
        self.written_at: dict[Digest, float] = {}  # time.time() when each blob was stored

    def put(self, stream: BinaryIO, *, on_bytes: ProgressFn | None = None) -> Digest:
        return self.ingest(stream, on_bytes=on_bytes)[0]

    def ingest(
        self, stream: BinaryIO, *, on_bytes: ProgressFn | None = None
    ) -> tuple[Digest, bool]:
        data = stream.read()
        if on_bytes is not None:
            on_bytes(len(data))
        digest = Digest(f"sha256:{hashlib.sha256(data).hexdigest()}")
        new = digest not in self.blobs
        if new:
            self.blobs[digest] = bytes(data)
            self.written_at[digest] = time.time()
        return digest, new

    def repair(
        self, stream: BinaryIO, expected: Digest, *, on_bytes: ProgressFn | None = None
    ) -> RepairOutcome:
        data = stream.read()
        if on_bytes is not None:
            on_bytes(len(data))
        digest = Digest(f"sha256:{hashlib.sha256(data).hexdigest()}")
        if digest != expected:
            raise wrong_bytes(digest, expected)
        existed = digest in self.blobs
        if existed and self.verify(digest):
            return "intact"
        self.blobs[digest] = bytes(data)
        self.written_at[digest] = time.time()
        return "repaired" if existed else "restored"

    def put_bytes(self, data: bytes) -> Digest:
        return self.ingest(io.BytesIO(data))[0]

    def delete(self, digest: Digest) -> None:
        self.blobs.pop(digest, None)
        self.written_at.pop(digest, None)

    def open(self, digest: Digest) -> BinaryIO:
        if digest not in self.blobs:
            raise NotFound(f"blob {short(digest)} is missing from the store")
        return cast(BinaryIO, VerifyingReader(io.BytesIO(self.blobs[digest]), digest))

    def read(self, digest: Digest) -> bytes:
        with self.open(digest) as reader:
            return reader.read()

    def has(self, digest: Digest) -> bool:
        return digest in self.blobs

    def size(self, digest: Digest) -> int:
        if digest not in self.blobs:
            raise NotFound(f"blob {short(digest)} is missing from the store")
        return len(self.blobs[digest])

    def age_seconds(self, digest: Digest) -> float:
        if digest not in self.blobs:
            raise NotFound(f"blob {short(digest)} is missing from the store")
        return time.time() - self.written_at.get(digest, 0.0)

    def verify(self, digest: Digest) -> bool:
        data = self.blobs.get(digest)
        return data is not None and f"sha256:{hashlib.sha256(data).hexdigest()}" == digest

    def digests(self) -> Iterator[Digest]:
        yield from sorted(self.blobs)
