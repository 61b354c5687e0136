"""Live quality on the dashboard, on a real catalog (SQLite and PostgreSQL) and through the
real ASGI app: a rollout that scores answers gets one chart per quality metric with a line
per release, and the verdict's quality lines; the service page shows its default quality
settings; the shadow comparisons page lists the judged pairs a page at a time (by key).
Telemetry is written through ``Serving.flush`` and pairs through ``Transcripts.write``, as
gateways write them."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.core.telemetry import TelemetryRecord
from airlock.core.transcripts import JudgedPair
from airlock.core.window import CLUSTERS, custom_field
from airlock.errors import Forbidden
from airlock.services.identity import Actor
from airlock.services.judged_pairs import JudgedPairs, PairFilter
from airlock.services.transcripts import Transcripts
from airlock.services.workspace import Workspace
from airlock.web import quality_views, views
from airlock.web.app import COOKIE, create_dashboard
from gateway.support import MOON, Releases
from rollout.support import OPERATOR, Lab, canary, record, wait_until

QUALITY = {
    "sample": 0.5,
    "scorers": {"no_refusal": {"check": {"refusal": False}, "tolerance": 0.5}},
}


@pytest.fixture
def lab(workspace: Workspace, tmp_path: Path) -> Lab:
    return Lab(workspace, Releases(workspace, tmp_path / "folders"))


@pytest.fixture
def chat(lab: Lab) -> tuple[str, str]:
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=OPERATOR, reason="launch")
    return stable, candidate


def scored(release: str, traffic: Any, at: datetime, passes: float, n: float) -> TelemetryRecord:
    """One flush of a release whose answers ``quality.no_refusal`` scored: passes of n."""
    return TelemetryRecord(
        "chat",
        release,
        traffic,
        at,
        at + timedelta(seconds=1),
        requests=int(n) * 2,
        custom={"quality.no_refusal": (passes, n)},
    )


def judged(release: str, at: datetime, rate: float, n: int) -> TelemetryRecord:
    """Traffic whose scored answers pass at ``rate``, spread over the users' clusters, as the
    analysis reads them."""
    base = record("chat", release, "live", at, requests=n)
    passes = [1.0 if i < rate * n else 0.0 for i in range(n)]
    successes, trials = [0.0] * CLUSTERS, [0.0] * CLUSTERS
    for i, p in enumerate(passes):
        successes[i % CLUSTERS] += p
        trials[i % CLUSTERS] += 1
    metric = "quality.no_refusal"
    return dataclasses.replace(
        base,
        custom={metric: (sum(passes), float(n))},
        clusters={
            custom_field(metric, "successes"): tuple(successes),
            custom_field(metric, "trials"): tuple(trials),
        },
    )


def pair(n: int, stable: str, candidate: str, at: datetime) -> JudgedPair:
    outcome = ("win", "tie", "loss")[n % 3]
    return JudgedPair(
        "chat",
        f"req-{n}",
        at + timedelta(seconds=n),
        stable,
        candidate,
        "judge@1.0.0",
        outcome,
        f"question {n} from [EMAIL]",
        f"stable answer {n}",
        f"candidate answer {n}",
    )


def test_a_scored_rollout_charts_each_quality_metric_per_release(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    spec = {**canary(10, bake=600), "quality": QUALITY}
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    t0 = view.created_at.replace(microsecond=0)
    lab.serving.flush(
        [scored(stable, "live", t0 + timedelta(seconds=s), 9, 10) for s in range(0, 120, 2)]
        + [scored(candidate, "live", t0 + timedelta(seconds=s), 6, 10) for s in range(0, 120, 2)]
        + [
            TelemetryRecord(  # a flush without scores (most of them) leaves the rates alone
                "chat", stable, "live", t0 + timedelta(seconds=1), t0 + timedelta(seconds=2),
                requests=50,
            )
        ],
        gateway="g1",
    )  # fmt: skip

    page = views.rollout_page(lab.ws, lab.serving, view.id, now=t0 + timedelta(seconds=150))
    q = page["quality"]
    assert q["settings"].sample == 0.5
    [row] = q["settings"].scorers
    assert (row.name, row.tolerance) == ("no_refusal", 0.5) and '"refusal": false' in row.check
    [chart] = q["charts"]
    assert (chart.key, chart.title) == ("quality.no_refusal", "Quality no_refusal: pass rate")
    stable_line, candidate_line = chart.lines
    assert stable_line.role == "stable" and candidate_line.role == "candidate"
    assert stable_line.latest == "90.0 %" and candidate_line.latest == "60.0 %"
    assert "600 scored, 90.0 % overall" in stable_line.name
    assert "600 scored, 60.0 % overall" in candidate_line.name
    assert candidate_line.points > 20 and candidate_line.path.startswith("M")
    assert q["rows"] == [] and not q["pairwise"]  # no verdict yet; no pairwise judge

    service = views.service_page(lab.ws, lab.serving, "chat", now=t0 + timedelta(seconds=150))
    [on_service] = service["quality"]["rollout"]["charts"]
    assert on_service.lines[1].latest == "60.0 %"


def test_the_controller_s_quality_verdict_is_shown_with_the_charts(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    spec = {**canary(10, bake=600, min_requests=20), "quality": QUALITY}
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    start = datetime.fromtimestamp(view.state.step_started_at, UTC)
    lab.serving.flush(
        [judged(stable, start, 0.95, 640), judged(candidate, start, 0.5, 640)], gateway="g1"
    )
    controller = lab.controller()

    def judged_once() -> bool | None:
        asyncio.run(controller.tick())
        return True if lab.rollouts.get(view.id).last_verdict is not None else None

    wait_until(judged_once, what="a verdict")
    page = views.rollout_page(lab.ws, lab.serving, view.id)
    [(row, words)] = page["quality"]["rows"]
    assert row["metric"] == "custom.quality.no_refusal" and row["outcome"] == "fail"
    assert "the candidate's rate is 10.03× stable's" in words  # fails 50 %, stable 5 %
    assert len(page["verdict_rows"]) > 1  # the quality line is one of the verdict's lines


def test_judged_pairs_come_newest_first_a_keyset_page_at_a_time(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    t0 = datetime.now(UTC).replace(microsecond=0)
    Transcripts(lab.ws).write(
        [], gateway="g1", pairs=[pair(n, stable, candidate, t0) for n in range(30)]
    )
    store = JudgedPairs(lab.ws)
    first = store.page("chat", limit=25)
    assert [p.request_id for p in first.items[:2]] == ["req-29", "req-28"]
    assert len(first.items) == 25 and first.next_cursor is not None
    rest = store.page("chat", limit=25, cursor=first.next_cursor)
    assert [p.request_id for p in rest.items] == [f"req-{n}" for n in range(4, -1, -1)]
    assert rest.next_cursor is None
    tally = store.tally("chat")
    assert (tally.wins, tally.ties, tally.losses) == (10, 10, 10)
    only_later = store.tally("chat", PairFilter(since=t0 + timedelta(seconds=27)))
    assert only_later.total == 3
    shown = quality_views.pairs_page(lab.ws, lab.serving, "chat")
    assert len(shown["pairs"]) == quality_views.PAIRS_PAGE and shown["next_cursor"]
    assert not shown["keeping"]  # the page says no new pairs are kept, and how to keep them

    # kept with the transcripts: they go when the service's retention has passed
    Transcripts(lab.ws).configure("chat", enabled=True, retention_s=3600, actor=OPERATOR)
    purged = Transcripts(lab.ws).purge_expired(t0 + timedelta(hours=1, seconds=15))
    assert purged.pairs == 15 and store.tally("chat").total == 15


# -- over HTTP, through the ASGI app -------------------------------------------------------------


def _who(secret: str | None) -> Actor:
    if secret != "olga-token":
        raise Forbidden("unknown token")
    return OPERATOR


def _get(lab: Lab, *paths: str) -> list[httpx.Response]:
    app = create_dashboard(lab.ws, serving=lab.serving, authenticate=_who)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dash") as http:
            http.cookies.set(COOKIE, "olga-token")
            return [await http.get(p) for p in paths]

    return asyncio.run(go())


def test_the_pages_show_defaults_charts_and_pairs(lab: Lab, chat: tuple[str, str]) -> None:
    stable, candidate = chat
    lab.serving.set_quality(
        "chat",
        {**QUALITY, "judge": {"release": stable, "mode": "pairwise"}},
        actor=OPERATOR,
        reason="score refusals",
    )
    view = lab.rollouts.start("chat", candidate, canary(10, bake=600), actor=OPERATOR).rollout
    t0 = view.created_at.replace(microsecond=0)
    lab.serving.flush(
        [scored(stable, "live", t0 + timedelta(seconds=s), 9, 10) for s in range(0, 60, 2)]
        + [scored(candidate, "live", t0 + timedelta(seconds=s), 5, 10) for s in range(0, 60, 2)],
        gateway="g1",
    )
    Transcripts(lab.ws).configure("chat", enabled=True, actor=OPERATOR)
    Transcripts(lab.ws).write(
        [], gateway="g1", pairs=[pair(n, stable, candidate, t0) for n in range(27)]
    )

    service, rollout, pairs, mine = _get(
        lab, "/services/chat", f"/rollouts/{view.id}", "/services/chat/pairs",
        f"/services/chat/pairs?rollout={view.id}",
    )  # fmt: skip
    assert service.status_code == 200, service.text
    assert 'id="quality-defaults"' in service.text and "quality.no_refusal" in service.text
    assert "(pairwise)" in service.text and 'data-chart-key="quality.no_refusal"' in service.text
    assert rollout.status_code == 200, rollout.text
    assert "Quality no_refusal: pass rate" in rollout.text
    assert f'/services/chat/pairs?rollout={view.id}"' in rollout.text  # a pairwise judge
    assert pairs.status_code == 200, pairs.text
    assert "9 won" in pairs.text and "9 tied" in pairs.text and "9 lost" in pairs.text
    assert pairs.text.count('<tr data-outcome="') == quality_views.PAIRS_PAGE
    assert "question 26 from [EMAIL]" in pairs.text and "candidate answer 26" in pairs.text
    assert "question 1 from" not in pairs.text and 'id="older"' in pairs.text
    assert mine.status_code == 200 and f"rollout #{view.id}" in mine.text

    cursor = pairs.text.split('id="older" href="?cursor=')[1].split("&")[0].split('"')[0]
    older, bad, other = _get(
        lab, f"/services/chat/pairs?cursor={cursor}", "/services/chat/pairs?cursor=xyz",
        "/services/nope/pairs",
    )  # fmt: skip
    assert older.status_code == 200 and older.text.count('<tr data-outcome="') == 2
    assert "question 1 from" in older.text and 'id="older"' not in older.text
    assert bad.status_code == 400 and "not a valid page cursor" in bad.text
    assert other.status_code == 404 and "no service named" in other.text
