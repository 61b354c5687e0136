"""Turn a folder into stored blobs and manifest file entries.

Scanning validates every path before a byte is stored (so a rejected folder
leaves nothing behind). Storing hashes each file while copying it, one read
pass, with one worker thread per core across files: hashlib and file I/O
release the GIL on large buffers, so two cores hash two shards at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from airlock.core.digest import Digest, short
from airlock.core.limits import check_distinct_paths, quoted
from airlock.core.manifest import FileEntry, FileFormat
from airlock.core.names import check_relative_path
from airlock.errors import InvalidInput, NotFound, UnsafeArtifact
from airlock.formats import inspect_file, media_type_for
from airlock.formats.inspect import PICKLE_MEDIA_TYPE
from airlock.services.hashcache import HashCache
from airlock.store import BlobStore

SKIP_DIRS = {".git", ".airlock", "__pycache__"}


@dataclass(frozen=True, slots=True)
class SourceFile:
    rel: str
    path: Path  # resolved, inside the folder
    size: int
    stat: os.stat_result


@dataclass(frozen=True, slots=True)
class IngestResult:
    entries: tuple[FileEntry, ...]
    new_blobs: tuple[Digest, ...]  # blobs this ingest added to the store
    bytes_total: int
    bytes_read: int  # bytes actually read (cache misses)
    bytes_new: int  # bytes newly stored
    repaired: tuple[Digest, ...] = ()  # damaged or missing blobs put back from the sources


def scan_folder(folder: Path) -> list[SourceFile]:
    """Every file under ``folder`` with a validated relative POSIX path.

    Symbolic links are followed only when they resolve inside the folder; a
    link loop, an unreadable directory or file, or a special file is refused
    with its path named, before anything is stored.
    """
    try:
        if not folder.exists():
            raise NotFound(f"no such file or folder: {folder}", hint="check the PATH argument")
        root = folder.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(
            f"cannot open {quoted(str(folder))}: {_why(exc)}", hint="check the PATH argument"
        ) from exc
    if root.is_file():
        st = _stat(root, root.name)
        return [SourceFile(check_relative_path(root.name), root, st.st_size, st)]
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=_walk_error):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for d in list(dirnames):
            full = Path(dirpath, d)
            if full.is_symlink():
                _inside(root, full)  # raises if it escapes
                dirnames.remove(d)
                # a linked directory inside the folder is walked where it really is
        for name in sorted(filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            check_relative_path(rel)
            target = _inside(root, full) if full.is_symlink() else full
            if not target.is_file():
                raise InvalidInput(
                    f"{quoted(rel)} is not a regular file",
                    hint="remove sockets, pipes or broken links",
                )
            st = _stat(target, rel)
            found.append(SourceFile(rel, target, st.st_size, st))
    if not found:
        raise InvalidInput(f"{folder} holds no files", hint="point PATH at a model folder")
    return found


def _why(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a symbolic link loop"
    return str(getattr(exc, "strerror", None) or exc)


def _walk_error(exc: OSError) -> None:
    raise InvalidInput(
        f"cannot read the folder {quoted(str(exc.filename))}: {_why(exc)}",
        hint="check its permissions, or move it out of the release folder",
    ) from exc


def _stat(path: Path, rel: str) -> os.stat_result:
    try:
        if not os.access(path, os.R_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        return path.stat()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {quoted(rel)}: {_why(exc)}", hint="check the file's permissions"
        ) from exc


def _inside(root: Path, link: Path) -> Path:
    rel = link.relative_to(root).as_posix()
    try:
        target = link.resolve(strict=True)
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"symbolic link {quoted(rel)} is broken (its target does not exist)",
            hint="remove the link or restore its target",
        ) from exc
    except (OSError, RuntimeError) as exc:  # Python 3.11 raises RuntimeError on a loop
        raise InvalidInput(
            f"symbolic link {quoted(rel)} cannot be followed: {_why(exc)}",
            hint="remove the link, or point it at a file inside the folder",
        ) from exc
    if not target.is_relative_to(root):
        raise InvalidInput(
            f"symbolic link {quoted(rel)} points outside the release folder "
            f"(to {quoted(str(target))})",
            hint="copy the file into the folder or remove the link",
        )
    return target


def check_sources(files: list[SourceFile]) -> None:
    """Release paths must stay distinct on case-insensitive and normalising filesystems."""
    check_distinct_paths(f.rel for f in files)


def inspect_formats(files: list[SourceFile], *, allow_pickle: bool) -> dict[str, FileFormat]:
    formats: dict[str, FileFormat] = {}
    for f in files:
        fmt = inspect_file(f.path, f.rel)
        if fmt is not None:
            formats[f.rel] = fmt
    unsafe = [rel for rel, fmt in formats.items() if fmt.unsafe]
    if unsafe and not allow_pickle:
        raise UnsafeArtifact(
            f"{len(unsafe)} pickle-based file(s) can run code when loaded: "
            f"{', '.join(quoted(u) for u in unsafe[:5])}",
        )
    return formats


def file_entry(rel: str, digest: Digest, size: int, fmt: FileFormat | None) -> FileEntry:
    """The manifest entry of one stored file."""
    pickled = fmt is not None and fmt.kind == "pickle"
    return FileEntry(
        path=rel,
        digest=digest,
        size=size,
        media_type=PICKLE_MEDIA_TYPE if pickled else media_type_for(rel),
        format=fmt,
    )


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file of a release whose bytes are already in the store (uploaded by a remote push)."""

    rel: str
    digest: Digest
    size: int


def check_stored(store: BlobStore, files: Sequence[StoredFile]) -> None:
    """Every path valid and distinct, every blob in the store with the size the file has."""
    if not files:
        raise InvalidInput("the release holds no files", hint="push a folder with model files")
    for f in files:
        check_relative_path(f.rel)
    check_distinct_paths(f.rel for f in files)
    for f in files:
        try:
            size = store.size(f.digest)
        except NotFound:
            size = None
        if size != f.size:
            raise NotFound(
                f"the blob of {quoted(f.rel)} ({short(f.digest)}, {f.size} bytes) is not in the "
                "store" + ("" if size is None else f" (a blob of {size} bytes is)"),
                hint="upload the missing blobs first (POST /api/v1/blobs/batch says which)",
            )


def inspect_stored(
    store: BlobStore, files: Sequence[StoredFile], *, allow_pickle: bool
) -> dict[str, FileFormat]:
    """``inspect_formats`` for files already in the store: each blob read under its own name."""
    with tempfile.TemporaryDirectory(prefix="airlock-inspect-") as tmp:
        sources = []
        for i, f in enumerate(files):
            path = Path(tmp, str(i), PurePosixPath(f.rel).name)
            path.parent.mkdir()
            local = getattr(store, "path_of", None)
            if local is not None:  # a local store: the blob itself, under the file's name
                path.symlink_to(local(f.digest))
            else:
                with store.open(f.digest) as reader, path.open("wb") as out:
                    shutil.copyfileobj(reader, out, 4 << 20)
            st = path.stat()
            sources.append(SourceFile(f.rel, path, st.st_size, st))
        return inspect_formats(sources, allow_pickle=allow_pickle)


def store_files(
    store: BlobStore,
    files: list[SourceFile],
    formats: dict[str, FileFormat],
    *,
    workers: int,
    cache: HashCache | None = None,
    on_bytes: Callable[[int], None] | None = None,
    discard: Callable[[list[Digest]], None] | None = None,
    repair: bool = False,
) -> IngestResult:
    """Hash and store every file (in parallel); skip files the cache and store already know.

    If any file fails, ``discard`` is given the blobs this call added before the
    error is raised, so a failed push leaves no orphan behind.

    A stored blob whose size differs from its source file is damaged: it is
    replaced from the file (after the file hashes to its digest). With
    ``repair`` every file is read and every stored blob re-hashed, so any
    damaged blob the folder has a good copy of is replaced.
    """
    added: list[Digest] = []  # list.append is atomic: shared by the worker threads
    repaired: list[Digest] = []

    def one(f: SourceFile) -> tuple[FileEntry, bool, int]:
        digest = None if repair else (cache.get(f.path, f.stat) if cache else None)
        new = False
        read = 0
        if digest is None or not store.has(digest):
            with _open_source(f) as stream:
                digest, new = store.ingest(stream, on_bytes=on_bytes)
            if new:
                added.append(digest)
            read = f.size
        elif on_bytes is not None:
            on_bytes(f.size)
        if not new and _damaged(store, digest, f.size, thorough=repair):
            with _open_source(f) as stream:
                outcome = store.repair(stream, digest)
            if outcome != "intact":
                repaired.append(digest)
            read += f.size
        if cache is not None:
            cache.put(f.path, f.stat, digest)
        return file_entry(f.rel, digest, f.size, formats.get(f.rel)), new, read

    results: list[tuple[FileEntry, bool, int]]
    try:
        if workers <= 1 or len(files) <= 1:
            results = [one(f) for f in files]
        else:
            # Largest first so the last file to finish is a small one.
            order = sorted(files, key=lambda f: -f.size)
            with ThreadPoolExecutor(max_workers=min(workers, len(files))) as pool:
                by_rel = {e.path: (e, new, read) for e, new, read in pool.map(one, order)}
            results = [by_rel[f.rel] for f in files]
    except BaseException:
        if discard is not None:
            discard(list(dict.fromkeys(added)))
        raise
    entries = tuple(r[0] for r in results)
    new = tuple(dict.fromkeys(r[0].digest for r in results if r[1]))
    new_sizes = {r[0].digest: r[0].size for r in results if r[1]}
    return IngestResult(
        entries=entries,
        new_blobs=new,
        bytes_total=sum(e.size for e in entries),
        bytes_read=sum(r[2] for r in results),
        bytes_new=sum(new_sizes.values()),
        repaired=tuple(dict.fromkeys(repaired)),
    )


@contextlib.contextmanager
def _open_source(f: SourceFile) -> Iterator[BinaryIO]:
    """The source file for reading; a failure to read it is the caller's ``InvalidInput``."""
    try:
        stream = f.path.open("rb", buffering=0)
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {quoted(f.rel)}: {_why(exc)}",
            hint="the file changed or vanished while pushing: push again",
        ) from exc
    with stream:
        try:
            yield stream
        except OSError as exc:  # stores raise their own failures as AirlockErrors
            raise InvalidInput(
                f"reading {quoted(f.rel)} failed: {_why(exc)}",
                hint="check the file and its disk, then push again",
            ) from exc


def _damaged(store: BlobStore, digest: Digest, size: int, *, thorough: bool) -> bool:
    """Cheaply (the size), or thoroughly (a re-hash): is the stored blob no longer intact?"""
    try:
        if store.size(digest) != size:
            return True
    except NotFound:
        return True
    return thorough and not store.verify(digest)


def repair_damaged(
    store: BlobStore, files: list[SourceFile], entries: tuple[FileEntry, ...], *, workers: int
) -> tuple[Digest, ...]:
    """Re-hash the stored blob of every file; replace each damaged one from its source."""
    by_rel = {f.rel: f for f in files}

    def check(entry: FileEntry) -> Digest | None:
        if store.verify(entry.digest):
            return None
        with _open_source(by_rel[entry.path]) as stream:
            outcome = store.repair(stream, entry.digest)
        return None if outcome == "intact" else entry.digest

    unique = list({e.digest: e for e in entries if e.path in by_rel}.values())
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        done = [d for d in pool.map(check, unique) if d is not None]
    return tuple(done)


def hash_files(
    files: Sequence[SourceFile],
    *,
    workers: int,
    cache: HashCache | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[list[Digest], int]:
    """The sha256 of each file (in parallel), from ``cache`` when its stat is unchanged;
    and how many bytes were read (the cache misses)."""
    import hashlib

    read: list[int] = []  # list.append is atomic: shared by the worker threads

    def one(f: SourceFile) -> Digest:
        digest = cache.get(f.path, f.stat) if cache is not None else None
        if digest is None:
            with _open_source(f) as stream:
                h = hashlib.sha256()
                while chunk := stream.read(4 << 20):
                    h.update(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            digest = Digest(f"sha256:{h.hexdigest()}")
            read.append(f.size)
            if cache is not None:
                cache.put(f.path, f.stat, digest)
        elif on_bytes is not None:
            on_bytes(f.size)
        return digest

    if workers <= 1 or len(files) <= 1:
        digests = [one(f) for f in files]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(files))) as pool:
            digests = list(pool.map(one, files))
    return digests, sum(read)


def check_pull_dest(dest: Path) -> None:
    """A pull writes into a new or empty folder only."""
    from airlock.errors import Conflict

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(
            f"{dest} already exists and is not empty",
            hint="choose a new destination folder",
        )
