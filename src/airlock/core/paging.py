"""Keyset pages: a bounded slice of an ordered list and an opaque cursor to the next one.

A list query never scans past what it returns: the cursor holds the sort key of the last
item handed out (base64url of canonical JSON), and the next page starts strictly after it,
through an index. ``Page[T]`` is what the services return; the edges render its items and
pass ``next_cursor`` on (REST: a ``Link`` header, CLI: a hint on stderr).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from airlock.core.semver import Version
from airlock.errors import InvalidInput

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_MAX_CURSOR = 2048


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """At most ``limit`` items in order; ``next_cursor`` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None = None

    def map(self, fn: Callable[[T], U]) -> Page[U]:
        return Page(tuple(fn(i) for i in self.items), self.next_cursor)


def page_limit(limit: int | None, *, default: int = DEFAULT_LIMIT) -> int:
    """The page size asked for, checked: 1..MAX_LIMIT (None: the default)."""
    if limit is None:
        return default
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def encode_cursor(key: Sequence[Any]) -> str:
    """An opaque cursor for a sort key (a list of JSON scalars)."""
    text = json.dumps(list(key), separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int) -> tuple[Any, ...] | None:
    """The sort key a cursor holds (None: start at the beginning); InvalidInput if it is not
    one this list handed out."""
    if cursor is None or cursor == "":
        return None
    bad = InvalidInput(
        "not a valid page cursor", hint="pass the next_cursor of the previous page unchanged"
    )
    if len(cursor) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(key, list) or len(key) != arity:
        raise bad
    if not all(isinstance(k, str | int | float) and not isinstance(k, bool) for k in key):
        raise bad
    if any(isinstance(k, str) and "\x00" in k for k in key):
        raise bad  # no key handed out holds one, and PostgreSQL text cannot
    return tuple(key)


def cursor_time(value: Any) -> datetime:
    """A time held in a cursor (ISO-8601 text, as ``encode_cursor`` got it from a page)."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            "not a valid page cursor", hint="pass the next_cursor of the previous page unchanged"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cursor_int(value: Any) -> int:
    """A whole number held in a cursor (an id, a version, a generation)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInput(
        "not a valid page cursor", hint="pass the next_cursor of the previous page unchanged"
    )


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[Any]]) -> Page[T]:
    """The page from ``limit + 1`` rows fetched: the extra one only says whether more exist."""
    items = tuple(rows[:limit])
    more = len(rows) > limit and bool(items)
    return Page(items, encode_cursor(key(items[-1])) if more else None)


FINAL_KEY_SUFFIX = b"~".hex()
"""How the version key of a final (not pre-) release ends."""


def version_key(version: str) -> str:
    """A text that sorts, byte by byte, as semantic versions rank (build metadata ignored).

    Hex of a byte string, so every collation (PostgreSQL's included) orders it the same:
    20-digit major, minor, patch; then '~' for a final release (after any pre-release) or
    '-' and the pre-release identifiers (numeric ones zero-padded, below alphanumeric ones),
    separated by '!', which sorts below every identifier character.
    """
    v = Version.parse(version)
    text = f"{v.major:020d}.{v.minor:020d}.{v.patch:020d}"
    if not v.prerelease:
        text += "~"
    else:
        ids = ("0" + f"{int(p):020d}" if p.isdigit() else "1" + p for p in v.prerelease)
        text += "-" + "!".join(ids)
    return text.encode("ascii").hex()
