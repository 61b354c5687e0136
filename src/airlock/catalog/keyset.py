"""The condition of a keyset page: rows strictly after (or, newest first, before) a sort key.

Written as a row-value comparison, ``(a, b) > (:a, :b)``, which PostgreSQL and SQLite
both answer from an index on ``(…, a, b)``: the page starts where the key is, without
reading the rows before it (an ``a > :a OR (a = :a AND b > :b)`` is not always).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, literal, tuple_


def past(
    columns: Sequence[ColumnElement[Any]], key: Sequence[Any], *, descending: bool = False
) -> ColumnElement[bool]:
    """``columns`` strictly after ``key`` in the page's order (before it when descending)."""
    values = [literal(v, c.type) for c, v in zip(columns, key, strict=True)]
    if len(columns) == 1:
        return columns[0] < values[0] if descending else columns[0] > values[0]
    row, given = tuple_(*columns), tuple_(*values)
    return row < given if descending else row > given
