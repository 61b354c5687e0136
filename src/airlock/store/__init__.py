"""Blob stores: where the bytes live. ``open_store(url)`` picks one from a URL.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from pathlib import Path

from airlock.errors import InvalidInput
from airlock.store.base import BlobStore, StagingArea, StagingFile, VerifyingReader
from airlock.store.local import LocalStore
from airlock.store.memory import MemoryStore


def open_store(url: str, *, default_root: Path) -> BlobStore:
    """``file:///path`` or a plain path → LocalStore; ``memory://`` → MemoryStore;
    ``s3://bucket/prefix?endpoint_url=...&region=...`` → S3Store (needs the s3 extra)."""
    if not url:
        return LocalStore(default_root)
    if url.startswith("file://"):
        return LocalStore(Path(url.removeprefix("file://")))
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("s3://"):
        from airlock.store.s3 import S3Store  # boto3 is optional: import it only when asked

        return S3Store.from_url(url)
    if "://" in url:
        raise InvalidInput(
            f"unsupported store URL: {url!r}",
            hint="use file:///absolute/path or s3://bucket/prefix",
        )
    return LocalStore(Path(url))


__all__ = [
    "BlobStore",
    "LocalStore",
    "MemoryStore",
    "StagingArea",
    "StagingFile",
    "VerifyingReader",
    "open_store",
]
