"""Telemetry retention: raw per-second rows roll up into per-minute, then per-hour rows.

The gateway flushes one row per release, traffic kind and gateway each second; a year of
that is tens of millions of rows per service. Rows older than ``raw_age`` are merged into
one row per minute, rows older than ``minute_age`` into one per hour, with
:class:`~airlock.core.telemetry.TelemetryRecord` ``+`` (counts, histograms, per-cluster
rows, fine latency cells: every sum a later reader takes is unchanged, since ``+`` is
associative and commutative). A bucket already held by one row is left alone, so a run
is idempotent and late rows simply merge into the bucket's row next time.

What an in-flight rollout's analysis reads is never touched: for a service with a rollout
in flight, only rows that ended before the rollout started are rolled up.

``TelemetryRetention.maybe_run`` is what a long-running loop calls (at most every
``every``); ``airlock gc --telemetry`` calls ``run``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from airlock.catalog import rollouts as rollout_sql
from airlock.catalog import serving as serving_sql
from airlock.config import Settings
from airlock.core.telemetry import TelemetryRecord
from airlock.services.workspace import Workspace

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
_PAGE = 5000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_age: timedelta = timedelta(hours=48)
    """Per-second rows are kept this long, then rolled up per minute."""
    minute_age: timedelta = timedelta(days=30)
    """Per-minute rows are kept this long, then rolled up per hour."""
    every: timedelta = timedelta(minutes=10)
    """How often a long-running loop runs the roll-up."""

    @classmethod
    def of(cls, settings: Settings) -> RetentionPolicy:
        """The policy ``AIRLOCK_TELEMETRY_RAW_HOURS`` / ``_MINUTE_DAYS`` set."""
        return cls(
            raw_age=timedelta(hours=settings.telemetry_raw_hours),
            minute_age=timedelta(days=settings.telemetry_minute_days),
        )

    def __post_init__(self) -> None:
        if self.raw_age <= timedelta(0) or self.minute_age < self.raw_age:
            raise ValueError("raw_age must be positive and minute_age at least raw_age")


@dataclass(frozen=True, slots=True)
class RollupReport:
    rows_read: int = 0
    rows_deleted: int = 0
    rows_written: int = 0
    services: tuple[str, ...] = ()
    held: dict[str, datetime] = field(default_factory=dict)
    """Services with a rollout in flight: rows from this time on were kept as they are."""

    @property
    def rows_saved(self) -> int:
        return self.rows_deleted - self.rows_written


def bucket_start(at: datetime, size: timedelta) -> datetime:
    """The start of the ``size`` bucket holding ``at`` (buckets aligned on the epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    n = (at - epoch) // size
    return epoch + n * size


def merge_buckets(
    rows: Sequence[tuple[int, str, TelemetryRecord]], size: timedelta
) -> tuple[list[int], list[tuple[str, TelemetryRecord]]]:
    """Pure: group rows by (release, traffic, gateway, bucket of window_start); each group of
    two or more rows becomes one merged row. The ids to delete and the rows to write."""
    groups: dict[tuple[str, str, str, datetime], list[tuple[int, TelemetryRecord]]] = {}
    for rid, gateway, rec in rows:
        key = (rec.release, rec.traffic, gateway, bucket_start(rec.window_start, size))
        groups.setdefault(key, []).append((rid, rec))
    delete: list[int] = []
    write: list[tuple[str, TelemetryRecord]] = []
    for (_, _, gateway, _), members in groups.items():
        if len(members) < 2:
            continue
        merged = members[0][1]
        for _, rec in members[1:]:
            merged = merged + rec
        delete.extend(rid for rid, _ in members)
        write.append((gateway, merged))
    return delete, write


class TelemetryRetention:
    def __init__(
        self,
        workspace: Workspace,
        policy: RetentionPolicy | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = workspace.db
        self.policy = policy or RetentionPolicy()
        self.clock = clock
        self._last_run: datetime | None = None

    def maybe_run(self) -> RollupReport | None:
        """Run if ``policy.every`` passed since the last run (None: not due)."""
        now = self.clock()
        if self._last_run is not None and now - self._last_run < self.policy.every:
            return None
        return self.run()

    def run(self) -> RollupReport:
        """Roll up every service's old telemetry (per minute, then per hour)."""
        now = self.clock()
        self._last_run = now
        with self.db.read() as conn:
            services = serving_sql.services_with_telemetry(conn)
            held = {r.service: r.created_at for r in rollout_sql.live(conn)}
        totals = [0, 0, 0]
        for service in services:
            for size, age in ((MINUTE, self.policy.raw_age), (HOUR, self.policy.minute_age)):
                before = now - age
                if service in held:
                    before = min(before, held[service])
                for i, n in enumerate(self._roll(service, before, size)):
                    totals[i] += n
        return RollupReport(
            totals[0], totals[1], totals[2], tuple(services), {s: held[s] for s in held}
        )

    def _roll(self, service: str, before: datetime, size: timedelta) -> tuple[int, int, int]:
        """Walk the service's rows that ended by ``before``, a page at a time; merge each
        bucket wholly inside a page (the page's last bucket waits for the next page)."""
        read = deleted = written = 0
        after: tuple[datetime, int] | None = None
        while True:
            with self.db.write() as conn:
                rows = serving_sql.telemetry_page(
                    conn, service, before=before, after=after, limit=_PAGE
                )
                if not rows:
                    break
                last_bucket = bucket_start(rows[-1][2].window_start, size)
                complete = rows
                if len(rows) == _PAGE:
                    complete = [
                        r for r in rows if bucket_start(r[2].window_start, size) < last_bucket
                    ]
                    if not complete:  # one bucket wider than a page: take it as it is
                        complete = rows
                ids, merged = merge_buckets(complete, size)
                serving_sql.replace_telemetry(conn, ids, merged)
                read += len(complete)
                deleted += len(ids)
                written += len(merged)
                if len(rows) < _PAGE:
                    break
                tail = complete[-1][2]
                after = (tail.window_start, complete[-1][0])
        return read, deleted, written


__all__ = [
    "RetentionPolicy",
    "RollupReport",
    "TelemetryRetention",
    "bucket_start",
    "merge_buckets",
]
