"""Telemetry over time, for charts: the catalog's per-second records bucketed into steps.

``Timeline(ws).series("chat", since=..., step=timedelta(seconds=5))`` reads the
records every gateway flushed for a service and returns one
:class:`~airlock.core.series.ReleaseSeries` per release and traffic kind
(live, shadow). ``release_series`` does the same for one release across every
service that served it. The bucketing itself is pure (:mod:`airlock.core.series`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from airlock.catalog import serving as sql
from airlock.catalog import telemetry_steps
from airlock.core.series import MetricSeries, ReleaseSeries, bucket
from airlock.errors import InvalidInput, NotFound
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

DEFAULT_SPAN = timedelta(minutes=10)
DEFAULT_STEP = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime
    step: timedelta


def window(
    since: datetime | None = None,
    until: datetime | None = None,
    step_seconds: float | None = None,
    *,
    now: datetime | None = None,
) -> Window:
    """Fill in defaults: the last ten minutes in 5-second steps, aware UTC times."""
    end = _aware(until) if until else (now or datetime.now(UTC))
    start = _aware(since) if since else end - DEFAULT_SPAN
    if start >= end:
        raise InvalidInput("'since' must be before 'until'", hint="give ISO times, oldest first")
    step = timedelta(seconds=step_seconds) if step_seconds else DEFAULT_STEP
    if step_seconds is not None and not 0.5 <= step_seconds <= 86_400:
        raise InvalidInput("step must be between 0.5 s and one day")
    return Window(start, end, step)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class Timeline:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def series(self, service: str, w: Window, *, release: str | None = None) -> list[ReleaseSeries]:
        with self.ws.db.read() as conn:
            if sql.get(conn, service) is None:
                raise NotFound(f"no service named {service!r}", hint="run `airlock service ls`")
            releases = [Registry(self.ws).resolve_in(conn, release).ref] if release else None
            records = sql.telemetry(
                conn, service, since=w.since, until=w.until, releases=releases, detail=False
            )
        return bucket(records, since=w.since, until=w.until, step=w.step)

    def steps(self, service: str, w: Window) -> list[ReleaseSeries]:
        """What :meth:`series` returns, added up inside the database: for long windows
        (a day of per-second records), where reading every record would take seconds."""
        with self.ws.db.read() as conn:
            if sql.get(conn, service) is None:
                raise NotFound(f"no service named {service!r}", hint="run `airlock service ls`")
            return telemetry_steps.steps(conn, service, since=w.since, until=w.until, step=w.step)

    def quality(self, service: str, w: Window, *, prefixes: tuple[str, ...]) -> list[MetricSeries]:
        """The live quality metrics (custom metrics named ``prefix...``) per release, traffic
        and step of ``w``, added up inside the database."""
        with self.ws.db.read() as conn:
            if sql.get(conn, service) is None:
                raise NotFound(f"no service named {service!r}", hint="run `airlock service ls`")
            return telemetry_steps.custom_steps(
                conn, service, since=w.since, until=w.until, step=w.step, prefixes=prefixes
            )

    def release_series(self, ref: str, w: Window) -> dict[str, list[ReleaseSeries]]:
        """One release's traffic in every service that served it, by service."""
        registry = Registry(self.ws)
        with self.ws.db.read() as conn:
            row = registry.resolve_in(conn, ref)
            out: dict[str, list[ReleaseSeries]] = {}
            for service in sql.all_services(conn):
                records = sql.telemetry(
                    conn,
                    service.name,
                    since=w.since,
                    until=w.until,
                    releases=[row.ref],
                    detail=False,
                )
                if records:
                    out[service.name] = bucket(records, since=w.since, until=w.until, step=w.step)
        return out


__all__ = ["DEFAULT_SPAN", "DEFAULT_STEP", "Timeline", "Window", "window"]
