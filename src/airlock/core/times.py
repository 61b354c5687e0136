"""Reading the times users type: ``--since 2d``, ``--since 2026-12-01T09:30Z`` (pure).

``parse_since(text, now)`` accepts an ISO-8601 date or time (a time without a zone is
UTC) or a duration back from ``now`` — a number and a unit, ``s``, ``m``, ``h``,
``d`` or ``w``, several in a row (``1h30m``) — and refuses anything else with an
error that shows both forms. ``parse_duration(text)`` reads the duration form alone
(``--retention 30d``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from airlock.core.request_limits import clip
from airlock.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_MAX_SECONDS = 100 * 365 * 86400.0


def parse_since(text: str, now: datetime) -> datetime:
    """The moment ``text`` names, as an aware UTC datetime (see the module docstring)."""
    value = text.strip()
    compact = value.replace(" ", "").lower()
    if compact and _DURATION.match(compact):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))
        if seconds > _MAX_SECONDS:
            raise InvalidInput(f"--since {clip(text)!r} reaches back more than a century")
        return now.astimezone(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--since {clip(text)!r} is neither an ISO-8601 time nor a duration",
            hint="e.g. --since 2026-12-01, --since 2026-12-01T09:30Z, --since 30m, 1h, 2d, 1w",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_duration(text: str, what: str = "--retention") -> float:
    """Seconds in a duration such as ``30d``, ``12h`` or ``1h30m`` (units as ``--since``)."""
    compact = text.strip().replace(" ", "").lower()
    if not compact or not _DURATION.match(compact):
        raise InvalidInput(
            f"{what} {clip(text)!r} is not a duration",
            hint="a number and a unit, several in a row: 90s, 30m, 12h, 30d, 1w, 1d12h",
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))
    if seconds > _MAX_SECONDS:
        raise InvalidInput(f"{what} {clip(text)!r} is longer than a century")
    return seconds


def since_text(text: str | None, now: datetime) -> str | None:
    """``parse_since`` as the audit log stores times (ISO, UTC, microseconds): comparable as text."""
    if text is None:
        return None
    return parse_since(text, now).isoformat(timespec="microseconds")


__all__ = ["parse_duration", "parse_since", "since_text"]
