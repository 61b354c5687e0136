"""The ``BlobStore`` protocol: immutable bytes named by their sha256 digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol, runtime_checkable

from airlock.core.digest import Digest, short
from airlock.errors import IntegrityError

CHUNK = 4 << 20  # 4 MiB: large enough that hashlib releases the GIL and syscalls amortise
ProgressFn = Callable[[int], None]
# What ``repair`` did: the blob was fine (untouched), damaged (replaced) or missing (written).
RepairOutcome = Literal["intact", "repaired", "restored"]


@runtime_checkable
class BlobStore(Protocol):
    """Write-once storage of blobs. Every read is verified against the digest."""

    url: str

    def put(self, stream: BinaryIO, *, on_bytes: ProgressFn | None = None) -> Digest:
        """Store the stream's bytes, hashing while copying; return their digest."""
        ...

    def ingest(
        self, stream: BinaryIO, *, on_bytes: ProgressFn | None = None
    ) -> tuple[Digest, bool]:
        """Like ``put``, and also say whether the blob is new to the store."""
        ...

    def put_bytes(self, data: bytes) -> Digest: ...

    def repair(
        self, stream: BinaryIO, expected: Digest, *, on_bytes: ProgressFn | None = None
    ) -> RepairOutcome:
        """Replace blob ``expected`` with the stream's bytes if it is damaged or missing.

        The bytes must hash to ``expected`` (else ``IntegrityError``, nothing
        written). A blob that verifies is never overwritten.
        """
        ...

    def delete(self, digest: Digest) -> None:
        """Remove a blob: only for garbage collection and undoing a failed push."""
        ...

    def open(self, digest: Digest) -> BinaryIO:
        """A reader that raises ``IntegrityError`` at EOF if the bytes do not match."""
        ...

    def read(self, digest: Digest) -> bytes:
        """All the bytes of a blob, verified."""
        ...

    def has(self, digest: Digest) -> bool: ...

    def size(self, digest: Digest) -> int: ...

    def age_seconds(self, digest: Digest) -> float:
        """Seconds since the blob was written (garbage collection spares young blobs)."""
        ...

    def verify(self, digest: Digest) -> bool:
        """Re-hash the stored bytes; False when they no longer match the name."""
        ...

    def digests(self) -> Iterator[Digest]:
        """Every blob in the store."""
        ...


@dataclass(frozen=True, slots=True)
class StagingFile:
    """A temporary file of a write that never finished (its process was killed)."""

    name: str
    size: int
    age_seconds: float  # since it was last written to


@runtime_checkable
class StagingArea(Protocol):
    """A store that writes through temporary files it can list and remove (``LocalStore``).

    A write cleans its own temporary file on any exception; only a killed
    process leaves one behind, and garbage collection removes the old ones.
    """

    def staging_files(self) -> list[StagingFile]: ...

    def remove_staging(self, name: str) -> bool:
        """Remove one temporary file; False when it is gone already."""
        ...


class VerifyingReader:
    """Wraps a binary stream, hashes what is read, checks the digest at EOF."""

    def __init__(self, raw: BinaryIO, digest: Digest) -> None:
        self._raw = raw
        self._digest = digest
        self._hash = hashlib.sha256()
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._hash.update(data)
        if not data or n < 0:
            self._finish()
        return data

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        actual = f"sha256:{self._hash.hexdigest()}"
        if actual != self._digest:
            raise IntegrityError(
                f"blob {short(self._digest)} is damaged: its bytes hash to {short(actual)}",
            )

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wrong_bytes(actual: Digest, expected: Digest) -> IntegrityError:
    return IntegrityError(
        f"the given bytes hash to {short(actual)}, not {short(expected)}: "
        "they are not a copy of that blob",
        hint="give the original file (the one that was pushed)",
    )


def read_all_verified(stream: BinaryIO, digest: Digest) -> bytes:
    reader = VerifyingReader(stream, digest)
    with reader:
        return reader.read()
