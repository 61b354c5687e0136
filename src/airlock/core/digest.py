"""Content digests: ``sha256:<64 hex>``."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NewType

from airlock.core.limits import quoted
from airlock.errors import InvalidInput

Digest = NewType("Digest", str)

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_PREFIX_RE = re.compile(r"^(sha256:)?[0-9a-f]{4,64}$")


def parse_digest(text: str) -> Digest:
    """Validate ``sha256:<hex>`` (a bare 64-hex string is accepted too)."""
    value = text.strip().lower()
    if re.fullmatch(r"[0-9a-f]{64}", value):
        value = f"sha256:{value}"
    if not _DIGEST_RE.match(value):
        raise InvalidInput(
            f"not a digest: {quoted(text)}",
            hint="a digest looks like sha256:<64 hex characters>",
        )
    return Digest(value)


def is_digest_prefix(text: str) -> bool:
    """True for ``sha256:abcd...`` or a bare hex prefix of at least 4 characters."""
    return bool(_PREFIX_RE.match(text.strip().lower()))


def hex_of(digest: Digest) -> str:
    return digest.split(":", 1)[1]


def digest_bytes(data: bytes) -> Digest:
    return Digest(f"sha256:{hashlib.sha256(data).hexdigest()}")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the bytes that get hashed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def short(digest: str, n: int = 12) -> str:
    """``sha256:0123456789ab`` for display."""
    return digest[: len("sha256:") + n] if digest.startswith("sha256:") else digest[:n]
