"""Hash on one core while the previous chunk is written on another.

SHA-256 of one file cannot be split across cores, but writing can overlap it:
the reading thread fills a buffer and hashes it, hands it to a writer thread,
and takes the next free buffer. Both ``hashlib.update`` and ``os.write``
release the GIL on large buffers, so a single big file (a GGUF, one shard)
costs max(hash, write) instead of hash + write.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import queue
import threading

DIRECT_ALIGN = 4096
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def write_all(fd: int, data: memoryview, *, direct: bool) -> bool:
    """Write everything; returns whether the descriptor is still in O_DIRECT mode.

    An unaligned tail cannot go through O_DIRECT: the flag is dropped first.
    """
    if direct and len(data) % DIRECT_ALIGN:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)
        direct = False
    while data:
        written = os.write(fd, data)
        data = data[written:]
    return direct


class ChunkPipeline:
    """A ring of page-aligned buffers between the hashing thread and a writer thread."""

    def __init__(self, fd: int, *, direct: bool, chunk: int, buffers: int = 3) -> None:
        self.fd = fd
        self.direct = direct
        self._maps = [mmap.mmap(-1, chunk) for _ in range(buffers)]
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(buffers):
            self._free.put(i)
        self._full: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def take(self) -> tuple[int, memoryview]:
        """A free buffer (index, view); blocks while all are being written."""
        self._raise()
        i = self._free.get()
        return i, memoryview(self._maps[i])

    def give_back(self, i: int) -> None:
        self._free.put(i)

    def submit(self, i: int, n: int) -> None:
        """Queue the first ``n`` bytes of buffer ``i`` for writing."""
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, daemon=True)
            self._thread.start()
        self._full.put((i, n))

    def finish(self) -> None:
        """Wait for every queued write, then fsync; raise the writer's error if any."""
        self._stop()
        self._raise()
        os.fsync(self.fd)

    def close(self) -> None:
        self._stop()
        for m in self._maps:
            m.close()

    def _stop(self) -> None:
        if self._thread is not None:
            self._full.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_loop(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            i, n = item
            try:
                if self._error is None:
                    with memoryview(self._maps[i]) as view, view[:n] as data:
                        self.direct = write_all(self.fd, data, direct=self.direct)
            except BaseException as exc:  # handed to the hashing thread
                self._error = exc
            finally:
                self._free.put(i)
