"""The dashboard's view builders on a real catalog (SQLite and PostgreSQL): health figures on
the overview, the rollout page (steps with bake progress, decisions, verdict in words, charts
over its span or a chosen range), the keyset list of rollouts, where a release serves; and the
pure chart helpers (ranges, y axes that show small rates). Telemetry is written through
``Serving.flush``, as gateways write it; the verdict is taken by the real controller."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airlock.core.telemetry import TelemetryRecord
from airlock.errors import InvalidInput, NotFound
from airlock.services.health import Health
from airlock.services.rollouts import Rollouts
from airlock.services.timeline import Timeline
from airlock.services.workspace import Workspace
from airlock.web import views
from airlock.web.charts import MAX_POINTS, axis, chart_window, parse_range
from gateway.support import MOON, Releases
from rollout.support import OPERATOR, Lab, canary, record, wait_until


@pytest.fixture
def lab(workspace: Workspace, tmp_path: Path) -> Lab:
    return Lab(workspace, Releases(workspace, tmp_path / "folders"))


@pytest.fixture
def chat(lab: Lab) -> tuple[str, str]:
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=OPERATOR, reason="launch")
    return stable, candidate


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


# -- pure chart helpers -------------------------------------------------------------------------


def test_ranges_are_15m_1h_24h_and_never_more_than_120_points() -> None:
    assert parse_range(None) is None and parse_range("") is None
    assert parse_range("1h") == timedelta(hours=1)
    with pytest.raises(InvalidInput, match="unknown chart range '7d'") as err:
        parse_range("7d")
    assert err.value.hint == "one of: 15m, 1h, 24h"
    end = datetime(2026, 1, 1, tzinfo=UTC)
    for key, points in (("15m", 113), ("1h", 120), ("24h", 120)):
        w = chart_window(end - RANGE[key], end)
        n = -(-(w.until - w.since) // w.step)
        assert n == points <= MAX_POINTS
    assert chart_window(end - timedelta(hours=24), end).step == timedelta(seconds=720)


RANGE = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24)}


def test_a_small_error_rate_gets_an_axis_of_its_own_size() -> None:
    ax = axis([0.0, 0.002, None, 0.0015], floor=0.001, scale=100, unit=" %")
    assert ax.top == pytest.approx(0.003)  # 0.2 % fills two thirds of the height, not 0.2 %
    assert [t.label for t in ax.ticks] == ["0.0 %", "0.1 %", "0.2 %", "0.3 %"]
    tiny = axis([0.0004], floor=0.0001, scale=100, unit=" %")
    assert [t.label for t in tiny.ticks][-1] == "0.06 %" and len(set(tiny.ticks)) == len(tiny.ticks)
    quiet = axis([0.0, None], floor=0.001, scale=100, unit=" %")  # no errors: the floor
    assert quiet.top == pytest.approx(0.001) and quiet.ticks[-1].label == "0.10 %"
    big = axis([412.0], floor=1.0, unit=" ms")
    assert big.top == 600 and [t.label for t in big.ticks] == ["0 ms", "200 ms", "400 ms", "600 ms"]
    assert big.y(0) > big.y(600)  # higher values are drawn higher


# -- adding up in the database --------------------------------------------------------------------


def test_steps_added_up_in_sql_equal_the_records_added_up_one_by_one(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    since = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    records = [
        record("chat", stable, "live", since + timedelta(seconds=s), requests=7, errors=s % 3)
        for s in range(-5, 125)  # some before the window, one on every step boundary
    ]
    records += [
        record("chat", candidate, "shadow", since + timedelta(seconds=s, milliseconds=250),
               requests=3, flags=1, latency_ms=50 + s)
        for s in range(40, 90)
    ]  # fmt: skip
    records.append(  # an empty histogram and feedback only: added up all the same
        TelemetryRecord("chat", candidate, "live", since + timedelta(seconds=61),
                        since + timedelta(seconds=62), feedback_sum=4.0, feedback_count=2)
    )  # fmt: skip
    lab.serving.flush(records, gateway="g1")
    lab.serving.flush(records[:20], gateway="g2")  # a second gateway's records add up too
    w = chart_window(since, since + timedelta(minutes=2))
    assert w.step == timedelta(seconds=1)
    for step in (1, 8, 30):
        coarse = type(w)(w.since, w.until, timedelta(seconds=step))
        fast, slow = Timeline(lab.ws).steps("chat", coarse), Timeline(lab.ws).series("chat", coarse)
        assert fast == slow
        assert [(s.release, s.traffic) for s in fast] == [
            (stable, "live"),
            (candidate, "shadow"),
            (candidate, "live"),
        ]
    with pytest.raises(NotFound):
        Timeline(lab.ws).steps("nope", w)


# -- health figures -------------------------------------------------------------------------------


def test_overview_health_per_service_and_release(lab: Lab, chat: tuple[str, str]) -> None:
    stable, candidate = chat
    lab.rollouts.start("chat", candidate, canary(10, bake=600), actor=OPERATOR)
    now = datetime.now(UTC).replace(microsecond=0)
    records = []
    for s in range(60):  # the last minute: stable 9 req/s with one error in 500, candidate 1 req/s
        t = now - timedelta(seconds=60 - s)
        records.append(
            record("chat", stable, "live", t, requests=9, errors=1 if s % 55 == 0 else 0)
        )
        records.append(record("chat", candidate, "live", t, requests=1, latency_ms=400))
    old = now - timedelta(minutes=7)  # before the five minutes: left out
    records.append(record("chat", stable, "live", old, requests=1000, errors=1000))
    lab.serving.flush(records, gateway="g1")

    data = views.overview(lab.ws, lab.serving, now=now)
    [card] = data["cards"]
    health = card.health
    assert health is not None and health.service == "chat"
    by = {r.placement.release: r for r in health.releases}
    assert (by[stable].placement.role, by[stable].placement.weight_pct) == ("stable", 90.0)
    assert (by[candidate].placement.role, by[candidate].placement.weight_pct) == ("candidate", 10.0)
    assert by[stable].requests == 540 and by[stable].errors == 2
    assert by[stable].requests_per_s == pytest.approx(9.0)  # over the minute it covers
    assert by[stable].error_rate == pytest.approx(2 / 540)
    assert by[candidate].requests_per_s == pytest.approx(1.0)
    assert by[candidate].error_rate == 0.0
    assert by[candidate].p95_ms is not None and by[stable].p95_ms is not None
    assert by[candidate].p95_ms > 2 * by[stable].p95_ms  # 400 ms against 100 ms
    assert health.requests_per_s == pytest.approx(10.0)
    assert health.error_rate == pytest.approx(2 / 600)


def test_a_quiet_service_has_no_figures_rather_than_zeros(lab: Lab, chat: tuple[str, str]) -> None:
    [health] = Health(lab.ws).overview()
    [only] = health.releases
    assert (only.requests, only.error_rate, only.p95_ms) == (0, None, None)
    assert health.error_rate is None


# -- where a release serves -----------------------------------------------------------------------


def test_the_release_page_says_where_it_serves_and_which_aliases_point_at_it(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    lab.rollouts.start("chat", candidate, canary(25, bake=600), actor=OPERATOR)
    page = views.release_page(lab.ws, candidate, verify=False)
    [place] = page["placements"]
    assert (place.service, place.role, place.weight_pct) == ("chat", "candidate", 25.0)
    stable_page = views.release_page(lab.ws, stable, verify=False)
    [place] = stable_page["placements"]
    assert (place.role, place.weight_pct) == ("stable", 75.0)
    assert "stable" in stable_page["aliases"]  # service create points chat@stable at it
    other = lab.releases.builtin("chat", "1.2.0", MOON)
    assert views.release_page(lab.ws, other, verify=False)["placements"] == []


# -- the rollout page -----------------------------------------------------------------------------


def test_a_rollout_in_flight_shows_bake_progress_and_time_left(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    t0 = time.time()
    rollouts = Rollouts(lab.ws, serving=lab.serving, clock=lambda: t0)
    spec = canary(5, 50, bake=600)
    view = rollouts.start("chat", candidate, spec, actor=OPERATOR, reason="v1.1").rollout
    records = [
        record("chat", release, "live", _at(t0 + s), requests=n, errors=e)
        for s in range(0, 240, 2)
        for release, n, e in ((stable, 95, 0), (candidate, 500, 1))  # 0.2 % candidate errors
    ]
    lab.serving.flush(records, gateway="g1")

    page = views.rollout_page(lab.ws, lab.serving, view.id, now=_at(t0 + 240))
    first, second = page["steps"]
    assert (first.status, first.weight_pct, second.status) == ("current", 5.0, "pending")
    assert first.baked_seconds == pytest.approx(240) and first.left_seconds == pytest.approx(360)
    assert first.fraction == pytest.approx(0.4)
    [start] = page["decisions"]
    assert (start.record.action, start.record.actor, start.record.reason) == (
        "start",
        "olga",
        "v1.1",
    )
    assert (start.from_step, start.to_step) == (1, 1)

    errors, p95, rate = page["charts"]
    assert [c.key for c in page["charts"]] == ["error_rate", "p95", "requests"]
    w = page["window"]
    assert w.since == _at(t0) - timedelta(seconds=30) and w.until == _at(t0 + 240)
    stable_line, candidate_line = errors.lines
    assert stable_line.role == "stable" and candidate_line.role == "candidate"
    assert candidate_line.points > 50 and candidate_line.path.startswith("M")
    assert candidate_line.latest == "0.20 %"
    assert errors.axis.ticks[-1].label == "0.3 %"  # a 0.2 % rate fills the chart
    assert rate.lines[1].latest.endswith("/s") and p95.lines[0].points > 0

    hour = views.rollout_page(lab.ws, lab.serving, view.id, span=timedelta(hours=1))
    assert hour["window"].until - hour["window"].since == timedelta(hours=1)
    assert hour["window"].step == timedelta(seconds=30)


def test_a_past_rollout_keeps_its_decisions_verdict_and_charts(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    view = lab.rollouts.start(
        "chat", candidate, canary(20, min_requests=20), actor=OPERATOR
    ).rollout
    lab.rollouts.pause("chat", actor=OPERATOR, reason="watching")
    start = _at(view.state.step_started_at)
    lab.serving.flush(
        [
            record("chat", candidate, "live", start, requests=200, errors=60),
            record("chat", stable, "live", start, requests=800),
        ],
        gateway="g1",
    )
    controller = lab.controller()

    def ended() -> bool | None:
        asyncio.run(controller.tick())
        return True if not lab.rollouts.get(view.id).live else None

    wait_until(ended, what="the rollback")
    page = views.rollout_page(lab.ws, lab.serving, view.id)
    done = page["rollout"]
    assert done.phase == "rolled_back" and done.finished_at is not None
    assert [d.record.action for d in page["decisions"]] == ["start", "pause", "rollback"]
    rollback = page["decisions"][-1]
    assert rollback.outcome == "fail" and rollback.record.actor == "airlock-controller"
    assert [s.status for s in page["steps"]] == ["stopped"]
    assert page["verdict"].outcome == "fail"
    assert page["verdict_headline"].startswith("fail — 200 candidate / 800 stable requests")
    words = {row["metric"]: text for row, text in page["verdict_rows"]}
    assert "the candidate's rate is" in words["error_rate"]
    w = page["window"]
    assert w.until <= done.finished_at + timedelta(seconds=30)  # the span ends with the rollout
    errors = page["charts"][0]
    by_role = {line.role: line for line in errors.lines}
    assert by_role["candidate"].latest == "30.0 %" and by_role["stable"].latest == "0.0 %"


def test_an_unknown_rollout_is_not_found(lab: Lab, chat: tuple[str, str]) -> None:
    with pytest.raises(NotFound, match="no rollout #41"):
        views.rollout_page(lab.ws, lab.serving, 41)


def test_holds_that_repeat_the_one_before_are_folded_unless_asked() -> None:
    from airlock.core.rollout_view import RolloutRecord
    from airlock.core.verdict import VerdictReport
    from airlock.services.rollout_views import decisions

    def entry(action: str, step: int, outcome: str | None) -> RolloutRecord:
        verdict = VerdictReport(outcome, 10, 10, "r") if outcome else None  # type: ignore[arg-type]
        at = datetime(2026, 1, 1, tzinfo=UTC)
        return RolloutRecord(1, at, action, "x", "progressing", step, 0, "", verdict, None, None)

    history = [
        entry("start", 0, None),
        entry("hold", 0, "inconclusive"),
        entry("hold", 0, "inconclusive"),  # says nothing new
        entry("hold", 0, "pass"),
        entry("hold", 0, "pass"),  # nothing new
        entry("advance", 1, "pass"),
        entry("hold", 1, "pass"),  # the first hold of a step
        entry("rollback", 1, "fail"),
    ]
    folded = decisions(history, every_hold=False)
    assert [(d.record.action, d.outcome) for d in folded] == [
        ("start", None),
        ("hold", "inconclusive"),
        ("hold", "pass"),
        ("advance", "pass"),
        ("hold", "pass"),
        ("rollback", "fail"),
    ]
    assert [(d.from_step, d.to_step) for d in folded if d.record.action == "advance"] == [(1, 2)]
    assert len(decisions(history)) == len(history)


# -- the list of rollouts ------------------------------------------------------------------------


def test_rollouts_page_newest_first_by_keyset(lab: Lab, chat: tuple[str, str]) -> None:
    _, candidate = chat
    for i in range(5):
        lab.rollouts.start("chat", candidate, canary(10), actor=OPERATOR)
        lab.rollouts.abort("chat", actor=OPERATOR, reason=f"try {i}")
    first = views.rollouts_page(lab.ws, service=None, before=None, limit=2)
    assert [r.id for r in first["rollouts"]] == [5, 4] and first["older"] == 4
    second = views.rollouts_page(lab.ws, service="chat", before=first["older"], limit=2)
    assert [r.id for r in second["rollouts"]] == [3, 2] and second["older"] == 2
    last = views.rollouts_page(lab.ws, service=None, before=second["older"], limit=2)
    assert [r.id for r in last["rollouts"]] == [1] and last["older"] is None
    assert views.rollouts_page(lab.ws, service="other", before=None)["rollouts"] == []
    with pytest.raises(InvalidInput, match="1 to 200 rollouts"):
        views.rollouts_page(lab.ws, service=None, before=None, limit=0)


def test_labels_are_plain_numbers() -> None:
    ax = axis([37.0], floor=0.1, unit="/s")
    assert all(re.fullmatch(r"\d+(\.\d+)?/s", t.label) for t in ax.ticks)
