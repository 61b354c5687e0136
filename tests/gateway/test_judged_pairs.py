"""The pairs a pairwise judge compares in a shadow phase are kept for the shadow comparisons
page: on a running gateway with real upstream releases and a real judge on loopback, each
judged pair (prompt, stable answer, candidate answer, outcome, judge) reaches the catalog
through the transcript flush, redacted; a service that keeps no transcripts keeps no pairs
(its outcomes still count in the ``pairwise.judge`` metric)."""

from __future__ import annotations

import zlib
from typing import Any

from airlock.gateway.transcripts import TranscriptSink
from airlock.services.judged_pairs import JudgedPairs
from airlock.services.transcripts import Transcripts
from gateway.support import ALICE, Releases, Server, chat, serve_gateway
from gateway.test_online_quality import _custom, _drain, _plan, models  # noqa: F401

EMAIL = "reach me at carol@example.com"


def test_judged_pairs_are_kept_redacted_for_services_that_keep_transcripts(
    releases: Releases,
    models: tuple[Server, list[dict[str, Any]]],  # noqa: F811
) -> None:
    up, _ = models
    stable = releases.upstream("chat", "1.0.0", up.url, "helpful")
    evasive = releases.upstream("chat", "1.1.0", up.url, "evasive")
    judge = releases.upstream("judge", "1.0.0", up.url, "judge")
    releases.serving.create("chat", stable, actor=ALICE)
    store = Transcripts(releases.ws)
    quality = {"sample": 1.0, "judge": {"release": judge, "mode": "pairwise"}}
    gateway = releases.gateway()
    sink = TranscriptSink(gateway.transcripts, store, gateway_id="g1")
    questions = [f"question {i}, {EMAIL}" for i in range(12)]
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(_plan(stable, evasive, quality, shadow=True)))
        server.call(sink.flush())  # reads the settings: chat keeps no transcripts yet
        for q in questions[:4]:
            chat(server, "chat", q, user="u")
        _drain(server, gateway)
        server.call(sink.flush())
        assert JudgedPairs(releases.ws).tally("chat").total == 0  # nothing kept
        assert _custom(gateway, evasive, "pairwise.judge", "shadow")[1] == 4  # still judged

        store.configure("chat", enabled=True, actor=ALICE)
        server.call(sink.flush())  # the gateway learns it within a flush
        for q in questions[4:]:
            chat(server, "chat", q, user="u")
        _drain(server, gateway)
        server.call(sink.flush())

    page = JudgedPairs(releases.ws).page("chat", limit=50)
    assert len(page.items) == 8 and page.next_cursor is None
    refused = {q for q in questions[4:] if zlib.crc32(q.encode()) % 2 == 0}
    lost = {p.prompt for p in page.items if p.outcome == "loss"}
    assert len(lost) == len(refused) and all(p.outcome in ("loss", "tie") for p in page.items)
    for p in page.items:
        assert (p.stable_release, p.candidate_release, p.judge) == (stable, evasive, judge)
        assert "carol@example.com" not in f"{p.prompt} {p.stable_answer} {p.candidate_answer}"
        assert isinstance(p.prompt, str) and "[REDACTED:email]" in p.prompt
        assert p.stable_answer.startswith("Here is what I know about question")
    tally = JudgedPairs(releases.ws).tally("chat")
    assert (tally.losses, tally.total) == (len(refused), 8)
