"""Judged pairs: the prompts a pairwise judge compared in shadow phases, a page at a time.

In shadow and blue/green-verify phases both arms answer the same prompt; a pairwise
judge (``quality.judge.mode: pairwise``) says whether the candidate's answer wins, ties or
loses against stable's. The outcome always feeds the ``pairwise.judge`` live metric; a
service that keeps transcripts also keeps the pair itself (prompt and both answers,
redacted as transcripts are, deleted with them when its retention passes). This module
reads them back for the dashboard's shadow comparisons page: newest first, a keyset page
at a time (:mod:`airlock.core.paging`), never the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from airlock.catalog import quality as sql
from airlock.catalog import serving as serving_sql
from airlock.core.paging import Page, decode_cursor, page_limit, page_of
from airlock.core.transcripts import JudgedPair
from airlock.errors import InvalidInput, NotFound
from airlock.services.workspace import Workspace

DEFAULT_PAGE = 25


@dataclass(frozen=True, slots=True)
class PairTally:
    """How many stored pairs the candidate won, tied and lost."""

    wins: int
    ties: int
    losses: int

    @property
    def total(self) -> int:
        return self.wins + self.ties + self.losses


@dataclass(frozen=True, slots=True)
class PairFilter:
    candidate: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class JudgedPairs:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def page(
        self,
        service: str,
        where: PairFilter = PairFilter(),
        *,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[JudgedPair]:
        """Newest pairs first, ``limit`` a page (default 25); ``next_cursor`` for the next."""
        size = page_limit(limit, default=DEFAULT_PAGE)
        key = decode_cursor(cursor, arity=1)
        if key is not None and not isinstance(key[0], int):
            raise InvalidInput("not a valid page cursor", hint="pass next_cursor unchanged")
        with self.ws.db.read() as conn:
            _require(conn, service)
            rows = sql.pairs_page(
                conn,
                service,
                before_id=None if key is None else int(key[0]),
                limit=size + 1,
                candidate=where.candidate,
                since=where.since,
                until=where.until,
            )
        page = page_of(rows, size, lambda row: [row[0]])
        return page.map(lambda row: row[1])

    def tally(self, service: str, where: PairFilter = PairFilter()) -> PairTally:
        with self.ws.db.read() as conn:
            _require(conn, service)
            counts = sql.pair_counts(
                conn, service, candidate=where.candidate, since=where.since, until=where.until
            )
        return PairTally(counts.get("win", 0), counts.get("tie", 0), counts.get("loss", 0))


def _require(conn: Connection, service: str) -> None:
    if serving_sql.get(conn, service) is None:
        raise NotFound(f"no service named {service!r}", hint="run `airlock service ls`")


__all__ = ["DEFAULT_PAGE", "JudgedPairs", "PairFilter", "PairTally"]
