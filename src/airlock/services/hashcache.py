"""Remembers the digest of source files by (size, mtime, ctime, inode), as git's index does.

A re-push of a 2 GiB model with one shard changed then reads one shard, not
eight. Entries written within two seconds of a file's last change are not
trusted later (the "racy" case: the file could change again within the same
timestamp granularity).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from airlock.core.digest import Digest

RACY_SECONDS = 2.0


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class HashCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, tuple[list[int], str]] = {}
        self._dirty = False
        with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
            raw = json.loads(path.read_text("utf-8"))
            self._entries = {k: (list(v[0]), str(v[1])) for k, v in raw.items()}

    def get(self, file: Path, st: os.stat_result) -> Digest | None:
        hit = self._entries.get(str(file))
        if hit is None or hit[0] != _key(st):
            return None
        return Digest(hit[1])

    def put(self, file: Path, st: os.stat_result, digest: Digest) -> None:
        if time.time() - st.st_mtime < RACY_SECONDS:
            return  # too fresh to trust its timestamp
        self._entries[str(file)] = (_key(st), digest)
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._entries, f)
            os.replace(tmp, self.path)
        except OSError:
            return  # a cache: losing an update costs one re-hash, not the push
        finally:  # a failed or interrupted save leaves no temporary file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._dirty = False
