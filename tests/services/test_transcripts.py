"""Transcripts on a real catalog (SQLite and PostgreSQL): opt-in, feedback join, scores, export
filters and provenance, and deletion after the retention with a controlled clock."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airlock import audit
from airlock.config import Settings
from airlock.core.transcripts import FeedbackEntry, TranscriptEntry
from airlock.errors import Conflict, Forbidden, InvalidInput, NotFound
from airlock.gateway.transcripts import TranscriptBuffer, TranscriptSink
from airlock.services.feedback_export import FeedbackExport
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.transcripts import Transcripts
from airlock.services.workspace import Workspace
from airlock_testkit import write_model

ALICE = Actor("alice", "admin")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(workspace: Workspace, tmp_path: Path) -> Transcripts:
    registry = Registry(workspace)
    for version in ("1.0.0", "1.1.0"):
        folder = write_model(tmp_path / f"m-{version}", seed=int(version[2]))
        registry.push(folder, name="chat", version=version, actor=ALICE)
    Serving(workspace, registry=registry).create("chat", "chat@1.0.0", actor=ALICE)
    return Transcripts(workspace)


def _entry(n: int, at: datetime, release: str = "chat@1.0.0") -> TranscriptEntry:
    return TranscriptEntry(
        response_id=f"chatcmpl-{n}",
        service="chat",
        release=release,
        arm="stable" if release == "chat@1.0.0" else "candidate",
        cluster=n % 4,
        kind="chat",
        at=at,
        prompt=(("system", "be brief"), ("user", f"question {n}")),
        answer=f"answer {n}",
    )


def _score(n: int, score: float, issued: datetime, **metrics: float) -> FeedbackEntry:
    return FeedbackEntry(
        f"chatcmpl-{n}", "chat", score, issued, issued + timedelta(seconds=5), metrics
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_opt_in_is_audited_and_off_says_what_remains(store: Transcripts) -> None:
    assert store.status("chat").enabled is False
    on = store.configure("chat", enabled=True, retention_s=3600, actor=ALICE, reason="dataset")
    assert on.enabled and on.retention_s == 3600 and on.stored == 0
    assert [s.service for s in store.settings() if s.enabled] == ["chat"]
    store.write([_entry(1, T0), _entry(2, T0 + timedelta(minutes=10))], gateway="g1")
    off = store.configure("chat", enabled=False, actor=ALICE)
    assert not off.enabled and off.retention_s == 3600  # the retention is kept
    assert off.stored == 2
    assert off.next_expiry == T0 + timedelta(hours=1)
    assert off.all_gone_at == T0 + timedelta(minutes=70)
    with store.db.read() as conn:
        events = [e for e in audit.entries(conn) if e.action == "service.transcripts"]
    assert [(e.details["enabled"], e.details["retention_s"]) for e in events] == [
        (True, 3600),
        (False, 3600),
    ]
    assert events[0].details["reason"] == "dataset" and events[0].actor == "alice"


def test_bad_settings_are_refused_clearly(store: Transcripts) -> None:
    with pytest.raises(NotFound, match="'nope' does not exist"):
        store.configure("nope", enabled=True, actor=ALICE)
    with pytest.raises(InvalidInput, match="at least 60 s"):
        store.configure("chat", enabled=True, retention_s=5, actor=ALICE)
    with pytest.raises(Forbidden, match="viewer"):
        store.configure("chat", enabled=True, actor=Actor("bob", "viewer"))
    assert store.status("chat").enabled is False


def test_export_joins_feedback_and_scores_and_filters(store: Transcripts, tmp_path: Path) -> None:
    store.configure("chat", enabled=True, actor=ALICE)
    store.write(
        [_entry(1, T0), _entry(2, T0 + timedelta(hours=1)), _entry(3, T0, "chat@1.1.0")],
        [_score(1, 1.0, T0, helpful=1.0), _score(2, 0.0, T0)],
        gateway="g1",
    )
    store.write([], [_score(2, 0.5, T0)], gateway="g2")  # a second score replaces the first
    assert store.update_scores("chatcmpl-1", {"judge.helpful": 0.9}, "judge@1.0.0")
    assert store.update_scores("chatcmpl-1", {"judge.safe": 1.0}, "judge@1.0.0")
    assert not store.update_scores("chatcmpl-404", {"x": 1.0}, None)

    out = tmp_path / "all.jsonl"
    result = FeedbackExport(store.ws).export("chat", out, actor=ALICE)
    assert result.count == 3
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    rows = {r["response_id"]: r for r in _lines(out)}
    one = rows["chatcmpl-1"]
    assert one["prompt"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "question 1"},
    ]
    assert one["answer"] == "answer 1" and one["release"] == "chat@1.0.0"
    assert one["score"] == 1.0 and one["feedback"]["metrics"] == {"helpful": 1.0}
    assert one["scores"] == {"judge.helpful": 0.9, "judge.safe": 1.0}
    assert one["judge"] == "judge@1.0.0"
    assert rows["chatcmpl-2"]["score"] == 0.5
    assert rows["chatcmpl-3"]["score"] is None and rows["chatcmpl-3"]["feedback"] is None
    prov = one["provenance"]
    assert prov["service"] == "chat" and prov["airlock_version"]
    assert prov["filter"] == {"since": None, "release": None, "min_score": None}
    assert datetime.fromisoformat(prov["exported_at"]) == result.exported_at

    good = FeedbackExport(store.ws).export(
        "chat", tmp_path / "good.jsonl", actor=ALICE, min_score=0.5
    )
    assert good.count == 2
    late = FeedbackExport(store.ws).export(
        "chat", tmp_path / "late.jsonl", actor=ALICE, since=T0 + timedelta(minutes=30)
    )
    assert [r["response_id"] for r in _lines(late.path)] == ["chatcmpl-2"]
    newer = FeedbackExport(store.ws).export(
        "chat", tmp_path / "new.jsonl", actor=ALICE, release="chat@1.1.0"
    )
    assert [r["response_id"] for r in _lines(newer.path)] == ["chatcmpl-3"]
    assert _lines(newer.path)[0]["provenance"]["filter"]["release"] == "chat@1.1.0"

    with store.db.read() as conn:
        exports = [e for e in audit.entries(conn) if e.action == "feedback.export"]
    assert len(exports) == 4
    assert exports[0].details["sha256"] == result.sha256 and exports[0].details["count"] == 3


def test_export_never_overwrites_without_force(store: Transcripts, tmp_path: Path) -> None:
    store.configure("chat", enabled=True, actor=ALICE)
    store.write([_entry(1, T0)], gateway="g1")
    out = tmp_path / "data.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(Conflict, match="already exists"):
        FeedbackExport(store.ws).export("chat", out, actor=ALICE)
    assert out.read_text() == "keep me\n"
    assert FeedbackExport(store.ws).export("chat", out, actor=ALICE, force=True).count == 1
    assert "keep me" not in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".data")] == []
    with pytest.raises(InvalidInput, match="min-score"):
        FeedbackExport(store.ws).export("chat", tmp_path / "x.jsonl", actor=ALICE, min_score=2.0)
    with pytest.raises(NotFound, match=r"no release chat@9\.9\.9"):
        FeedbackExport(store.ws).export(
            "chat", tmp_path / "x.jsonl", actor=ALICE, release="chat@9.9.9"
        )
    assert not (tmp_path / "x.jsonl").exists()


def test_rows_older_than_the_retention_are_deleted(store: Transcripts, tmp_path: Path) -> None:
    store.configure("chat", enabled=True, retention_s=3600, actor=ALICE)
    store.write(
        [_entry(1, T0), _entry(2, T0 + timedelta(minutes=45))],
        [_score(1, 1.0, T0), _score(2, 0.0, T0 + timedelta(minutes=45))],
        gateway="g1",
    )
    early = store.purge_expired(T0 + timedelta(minutes=59))
    assert (early.transcripts, early.feedback) == (0, 0)
    first = store.purge_expired(T0 + timedelta(minutes=61))
    assert (first.transcripts, first.feedback, first.services) == (1, 1, ("chat",))
    left = FeedbackExport(store.ws).export("chat", tmp_path / "left.jsonl", actor=ALICE)
    assert [r["response_id"] for r in _lines(left.path)] == ["chatcmpl-2"]
    # turned off, the rest still goes when its time comes
    store.configure("chat", enabled=False, actor=ALICE)
    purged = store.purge_expired(T0 + timedelta(minutes=106), service="chat", actor=ALICE)
    assert (purged.transcripts, purged.feedback) == (1, 1)
    assert store.status("chat").stored == 0
    with store.db.read() as conn:
        [event] = [e for e in audit.entries(conn) if e.action == "transcripts.purge"]
    assert event.details["transcripts"] == 1 and event.subject == "chat"


def test_the_flush_loop_purges_at_most_every_n_seconds(store: Transcripts) -> None:
    import asyncio

    store.configure("chat", enabled=True, retention_s=600, actor=ALICE)
    store.write([_entry(1, T0)], gateway="g1")
    clock = [T0.timestamp()]
    buffer = TranscriptBuffer()
    sink = TranscriptSink(buffer, store, gateway_id="g1", purge_every=300, clock=lambda: clock[0])
    asyncio.run(sink.flush())  # reads the settings and sweeps (nothing is old yet)
    assert buffer.services == {"chat"} and sink.purges == 1
    store.write([_entry(2, T0 + timedelta(seconds=650))], gateway="g1")
    clock[0] = T0.timestamp() + 200  # 200 s after the sweep: none
    asyncio.run(sink.flush())
    assert sink.purges == 1 and store.status("chat").stored == 2
    clock[0] = T0.timestamp() + 700  # due: row 1 (T0) is past 600 s, row 2 is not
    asyncio.run(sink.flush())
    assert sink.purges == 2 and store.status("chat").stored == 1
    store.configure("chat", enabled=False, actor=ALICE)
    asyncio.run(sink.flush())
    assert buffer.services == frozenset()


def test_a_fallback_answer_is_kept_as_the_candidates_arm(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    """The stable release answering for a failed candidate: release = stable, arm = fallback."""
    import asyncio

    from airlock.core.traffic import TrafficPlan, WeightedRelease
    from airlock.gateway import openai_wire as wire
    from airlock.gateway.transcripts import entry_of
    from gateway.support import Releases, Server, fake_upstream_app

    calls: list[dict[str, object]] = []
    ws = Workspace.open(sqlite_settings, create=True)
    try:
        with Server(fake_upstream_app(calls)) as up:
            releases = Releases(ws, tmp_path / "folders")
            stable = releases.upstream("chat", "1.0.0", up.url, "echo")
            bad = releases.upstream("chat", "1.1.0", up.url, "fail")
            gateway = releases.gateway()

            async def run() -> list[TranscriptEntry]:
                plan = TrafficPlan("chat", stable, (WeightedRelease(bad, 10_000),))
                await gateway.apply_plan(plan)
                gateway.transcripts.set_services({"chat"})
                body = {"model": "chat", "messages": [{"role": "user", "content": "hi 10.0.0.1"}]}
                req = wire.parse_request(json.dumps(body).encode(), "chat")
                await gateway.complete(req, {})
                recorded, _ = gateway.transcripts.drain()
                entries = [entry_of(r, gateway.response_ticket) for r in recorded]
                await gateway.aclose()
                return entries

            [entry] = asyncio.run(run())
    finally:
        ws.close()
    assert entry.release == stable and entry.arm == "fallback"
    assert entry.prompt == (("user", "hi [REDACTED:ipv4]"),)
    assert "10.0.0.1" not in entry.answer


def test_labels_measure_the_judge_and_a_judge_people_disagree_with_cannot_gate(
    store: Transcripts, workspace: Workspace
) -> None:
    from airlock.core.quality import JUDGE_METRIC
    from airlock.core.rollout_spec import parse_spec
    from airlock.services.controller import RolloutController
    from airlock.services.rollouts import Rollouts

    judge = "chat@1.1.0"  # any pinned release can judge; what matters is its pin
    store.configure("chat", enabled=True, actor=ALICE)
    store.write([_entry(n, T0) for n in range(40)], gateway="gw-1")
    for n in range(40):  # the judge passes everything ...
        assert store.update_scores(f"chatcmpl-{n}", {JUDGE_METRIC: 0.9}, judge)
    for n in range(40):  # ... people call half of it bad
        store.label(f"chatcmpl-{n}", n % 2 == 0, actor=ALICE, reason="reviewed")
    found = store.judge_agreement("chat", judge)
    assert (found.labels, found.agree) == (40, 20) and found.kappa == 0.0
    with workspace.db.read() as conn:
        events = list(audit.entries(conn, action="judge.label"))
    assert len(events) == 40 and events[0].details["reason"] == "reviewed"
    with pytest.raises(NotFound, match="no kept transcript"):
        store.label("chatcmpl-unknown", True, actor=ALICE)

    quality = {"judge": {"release": judge, "min_agreement": 0.7, "min_labels": 30}}
    spec = parse_spec({"strategy": "shadow", "duration_seconds": 60, "quality": quality})
    controller = RolloutController(Rollouts(workspace))
    untrusted = controller.judge_settings("chat", spec)
    assert untrusted is not None
    metric = untrusted.metrics.custom[JUDGE_METRIC]
    assert not metric.gating and "below the required 70%" in metric.note
    lenient = parse_spec(
        {"strategy": "shadow", "duration_seconds": 60, "quality": {"judge": {"release": judge}}}
    )
    assert controller.judge_settings("chat", lenient) is None  # no agreement required
