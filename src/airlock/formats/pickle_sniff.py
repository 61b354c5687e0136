"""Recognise pickled data by its bytes, whatever the file is called.

Loading a pickle can run arbitrary code, so a release that holds one must be
flagged even when it is named ``weights.dat`` or ``archive.tar``. Three shapes
are recognised:

- protocol 2 to 5: the PROTO opcode ``0x80`` followed by the protocol number;
- protocol 0 and 1 (no header): the first bytes decode as pickle opcodes whose
  stack effects are consistent, up to a STOP (or for 64 KiB, for a larger file);
  text and binary formats fail within a few bytes;
- a zip archive (a PyTorch ``.pt``/``.bin`` checkpoint, or any zip under any
  name) with a member named ``*.pkl``/``*.pickle`` or whose bytes are a pickle.

Only a bounded prefix of each file (and of each zip member) is read.
"""

from __future__ import annotations

import io
import pickletools
import struct
import warnings
import zipfile
from pathlib import Path

SNIFF_BYTES = 64 << 10
MAX_ZIP_MEMBERS = 10_000
MAX_CENTRAL_DIRECTORY = 16 << 20  # ~350,000 entries: zipfile keeps ~10× that in memory
MIN_OPCODES_IN_PREFIX = 8
PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle")

# Opcodes a protocol 0/1 pickle can start with: they push without popping.
_FIRST_OPCODES = frozenset(b"()]}NIFLSVKJMUTXGcP")
_MARK = pickletools.markobject
_SLICE = pickletools.stackslice


class _Truncated(Exception):
    """The prefix ended inside the pickle: the file goes on beyond what was read."""


class _Prefix(io.BytesIO):
    """A prefix of a longer stream: reading past its end raises ``_Truncated``."""

    def __init__(self, data: bytes, *, complete: bool) -> None:
        super().__init__(data)
        self.complete = complete

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        if not self.complete and n is not None and n >= 0 and len(data) < n:
            raise _Truncated
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not self.complete and not line.endswith(b"\n"):
            raise _Truncated
        return line


def pickle_kind(head: bytes, *, complete: bool) -> str | None:
    """``"protocol N"`` when ``head`` (a file's first bytes) is pickled data, else None.

    ``complete`` says whether ``head`` is the whole file.
    """
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"protocol {head[1]}"
    if head and head[0] in _FIRST_OPCODES and _decodes_as_pickle(head, complete=complete):
        return "protocol 0/1"
    return None


def _decodes_as_pickle(data: bytes, *, complete: bool) -> bool:
    """Emulate the unpickler's stack (depths and marks only) over the opcodes of ``data``."""
    # pickletools decodes string arguments with codecs.escape_decode, which warns
    # (DeprecationWarning) on invalid escapes in arbitrary bytes: not our concern here,
    # and under ``-W error`` it would turn a "not a pickle" answer into a crash.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _stack_ok(data, complete=complete)


def _stack_ok(data: bytes, *, complete: bool) -> bool:
    stack: list[bool] = []  # True: a mark
    memo: set[object] = set()
    ops = 0
    try:
        for op, arg, _pos in pickletools.genops(_Prefix(data, complete=complete)):
            ops += 1
            before, after = op.stack_before, op.stack_after
            if _MARK in before:
                if True not in stack:
                    return False
                while stack.pop() is not True:
                    pass
                below = before.index(_MARK)
                if len(stack) < below or any(stack[len(stack) - below :]):
                    return False
                del stack[len(stack) - below :]
            elif op.name == "POP" and stack:
                stack.pop()  # a protocol 0 POP may take a mark off
            else:
                if len(stack) < len(before) or any(stack[len(stack) - len(before) :]):
                    return False
                del stack[len(stack) - len(before) :]
            if op.name in ("GET", "BINGET", "LONG_BINGET") and arg not in memo:
                return False
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if not stack or stack[-1]:
                    return False
                memo.add(arg)
            if op.name == "MEMOIZE":
                memo.add(len(memo))
            stack.extend(item is _MARK for item in after if item is not _SLICE)
            if op.name == "STOP":
                return stack == [] and ops > 1
    except _Truncated:
        return ops >= MIN_OPCODES_IN_PREFIX
    except (ValueError, UnicodeDecodeError, IndexError):
        return False
    return False


def sniff_pickle(path: Path) -> str | None:
    """A short description when ``path`` holds pickled data (directly or in a zip), else None."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
            if head[:1] and head[0] in _FIRST_OPCODES:  # maybe protocol 0/1: read more
                head += f.read(SNIFF_BYTES - len(head))
            complete = not f.read(1)
    except OSError:
        return None
    kind = pickle_kind(head, complete=complete)
    if kind is not None:
        return f"pickle data ({kind}): loading it can execute arbitrary code"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        directory = _central_directory_size(path)
        if directory is not None and directory > MAX_CENTRAL_DIRECTORY:
            return (
                f"zip archive with a {directory}-byte index, too large to look inside: "
                "treated as holding pickled objects"
            )
        member = _pickle_member(path)
        if member is not None:
            return f"zip archive holding pickled objects ({member}): loading it can execute code"
    return None


def _central_directory_size(path: Path) -> int | None:
    """The size of a zip's central directory, from its end record (None: no end record)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - (1 << 16) - 22))
            tail = f.read()
    except OSError:
        return None
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    directory: int = struct.unpack_from("<L", tail, at + 12)[0]
    if directory == 0xFFFFFFFF:  # zip64: the size is in the zip64 end record
        at64 = tail.rfind(b"PK\x06\x06", 0, at)
        if at64 < 0 or len(tail) - at64 < 56:
            return None
        directory = struct.unpack_from("<Q", tail, at64 + 40)[0]
    return directory


def _pickle_member(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist()[:MAX_ZIP_MEMBERS]:
                name = info.filename
                if name.lower().endswith(PICKLE_MEMBER_SUFFIXES):
                    return _short(name)
                if info.is_dir() or info.flag_bits & 0x1:  # encrypted: cannot look inside
                    continue
                try:
                    with zf.open(info) as member:
                        head = member.read(SNIFF_BYTES)
                        complete = not member.read(1)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError):
                    continue
                except Exception:  # zlib/lzma/bz2 errors on a damaged member
                    continue
                if pickle_kind(head, complete=complete) is not None:
                    return _short(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return None
    return None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
