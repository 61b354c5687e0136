"""Reading ``--since``: ISO-8601 times and durations, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from airlock.core.times import parse_since, since_text
from airlock.errors import InvalidInput

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("1h", NOW - timedelta(hours=1)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(weeks=1)),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("1.5h", NOW - timedelta(minutes=90)),
        (" 2D ", NOW - timedelta(days=2)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T09:30", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T09:30Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T10:30:00+01:00", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_times_and_durations(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "1 hour", "h", "5", "", "-1h", "2026-13-01", "1y"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="neither an ISO-8601 time nor a duration") as info:
        parse_since(text, NOW)
    assert "30m" in info.value.hint


def test_stored_form_compares_as_text() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=5)))
    assert since_text("1h", local) == "2026-12-02T11:00:00.000000+00:00"
    assert since_text(None, NOW) is None
    with pytest.raises(InvalidInput, match="century"):
        parse_since("99999w", NOW)
