"""Resumable, verified uploads of one blob each: the server side of a remote push.

A client says which blob it sends (its digest and size) and from which byte on.
The bytes go to a partial file ``upload-<hex>`` in a staging folder (for a local
store its ``blobs/.staging``, so garbage collection removes an abandoned one),
hashed on the way. Once the last byte has arrived the digest is compared: only a
file that hashes to its name becomes a blob; anything else is deleted and refused.
A connection that drops mid-way leaves the partial file: ``received`` tells the
client where to continue.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from airlock.core.digest import Digest, hex_of, short
from airlock.errors import Conflict, IntegrityError, InvalidInput
from airlock.store.base import CHUNK, BlobStore

PREFIX = "upload-"


class UploadMismatch(IntegrityError):
    """The bytes sent do not hash to the digest they were sent as: the request was wrong
    (422), nothing stored is damaged; still an ``integrity_error`` to a client."""

    status = 422


@dataclass(frozen=True, slots=True)
class UploadState:
    digest: Digest
    size: int  # the whole blob, as the client declared it
    received: int  # bytes kept so far
    complete: bool  # the blob is in the store (verified)


class Uploads:
    """Partial uploads in ``root``; finished ones go into ``store`` after their digest checks."""

    def __init__(self, store: BlobStore, root: Path) -> None:
        self.store = store
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def partial(self, digest: Digest) -> Path:
        return self.root / f"{PREFIX}{hex_of(digest)}"

    def received(self, digest: Digest) -> int:
        """Bytes of ``digest`` received so far (0: none, or none kept)."""
        try:
            return self.partial(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def open(self, digest: Digest, *, offset: int, size: int) -> Upload:
        """Continue the upload of ``digest`` at ``offset`` (refused unless it is what we hold)."""
        if size < 0 or offset < 0 or offset > size:
            raise InvalidInput(
                f"invalid upload range for blob {short(digest)}: from byte {offset} of {size}",
                hint="send Content-Range: bytes START-END/SIZE",
            )
        held = self.received(digest)
        if offset != held:
            raise Conflict(
                f"blob {short(digest)}: the upload continues at byte {held}, not {offset}",
                hint="ask GET /api/v1/uploads/{digest} where to continue",
            )
        return Upload(self, digest, offset=offset, size=size)


_busy: set[str] = set()  # digests with an upload in flight in this process
_busy_lock = threading.Lock()


class Upload:
    """One request's bytes of one blob: ``write`` chunks, then ``finish``; always ``close``."""

    def __init__(self, uploads: Uploads, digest: Digest, *, offset: int, size: int) -> None:
        self.uploads = uploads
        self.digest = digest
        self.size = size
        self.received = offset
        with _busy_lock:
            if digest in _busy:
                raise Conflict(
                    f"blob {short(digest)} is being uploaded by another request",
                    hint="wait for it to finish, then ask which blobs are missing",
                )
            _busy.add(digest)
        self._path = uploads.partial(digest)
        self._hash = hashlib.sha256()
        try:
            if offset:
                with self._path.open("rb") as f:  # what we kept: hashed again, once
                    while chunk := f.read(CHUNK):
                        self._hash.update(chunk)
            self._file: BinaryIO = self._path.open("ab")
        except BaseException:
            self._release()
            raise

    def write(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.size:
            self._discard()
            raise InvalidInput(
                f"blob {short(self.digest)}: more bytes than the {self.size} declared",
                hint="declare the blob's real size",
            )
        self._hash.update(chunk)
        self._file.write(chunk)
        self.received += len(chunk)

    def finish(self) -> UploadState:
        """Keep a partial upload; verify a complete one and make it a blob (or refuse it)."""
        self._file.flush()
        if self.received < self.size:
            return UploadState(self.digest, self.size, self.received, False)
        actual = f"sha256:{self._hash.hexdigest()}"
        if actual != self.digest:
            self._discard()
            raise UploadMismatch(
                f"the uploaded bytes hash to {short(actual)}, not {short(self.digest)}: "
                "the blob was refused",
                hint="upload the file again (it changed, or the bytes were damaged in transit)",
            )
        self._file.close()
        store = self.uploads.store
        try:
            adopt = getattr(store, "adopt", None)
            if store.has(self.digest):  # damaged or duplicate: put back only if damaged
                with self._path.open("rb") as f:
                    store.repair(f, self.digest)
            elif adopt is not None:  # same filesystem: the verified file is renamed into place
                adopt(self._path, self.digest)
            else:
                with self._path.open("rb") as f:
                    store.ingest(f)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        return UploadState(self.digest, self.size, self.size, True)

    def _discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def _release(self) -> None:
        with _busy_lock:
            _busy.discard(self.digest)

    def close(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self._file.close()
        self._release()


def uploads_for(store: BlobStore, fallback: Path) -> Uploads:
    """Partial uploads in the store's own staging folder when it has one, else ``fallback``."""
    staging = getattr(store, "staging", None)
    return Uploads(store, staging if isinstance(staging, Path) else fallback)
