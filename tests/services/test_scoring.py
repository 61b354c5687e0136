"""Evaluation scorers cannot take the server down: only registered scorers may be named, they run
in a separate process under a time limit, and a failing, hanging or crashing scorer fails its
case while the run (and the server) goes on."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.core.evalsuite import Observation, parse_suite
from airlock.core.scorers import ScorerInput, keyword_overlap, token_f1
from airlock.errors import InvalidInput
from airlock.services.evals import Evals
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.scoring import ScorerProcess, check_scorers, registered_scorers
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace

ALICE = Actor("alice", "admin")
PLUGIN = """
import os, threading, time

def fine(x):
    return 1.0 if "lamp" in x.output else 0.0

def hangs(x):
    while True:
        time.sleep(0.05)

def dies(x):
    threading.settrace(lambda *a: None)
    os._exit(3)

def traces(x):
    threading.settrace(lambda *a: None)
    return 1.0
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package with scorers in the airlock.scorers group (what an admin installs)."""
    root = tmp_path / "plugins"
    info = root / "bad_scorers-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-scorers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[airlock.scorers]\n"
        + "".join(f"{n} = bad_scorers:{n}\n" for n in ("fine", "hangs", "dies", "traces"))
    )
    (root / "bad_scorers.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "bad_scorers", raising=False)


def _suite(*scorers: str) -> Any:
    cases = "".join(
        f"  - {{id: c{i}, prompt: p, reference: lamp, checks: [{{scorer: '{s}'}}]}}\n"
        for i, s in enumerate(scorers)
    )
    return parse_suite(f"name: s\ncases:\n{cases}", default_name="s")


@pytest.fixture
def chat(workspace: Workspace, make_model: Any) -> str:
    return (
        Registry(workspace).push(make_model(seed=7), name="chat", version="1.0.0", actor=ALICE).ref
    )


def test_a_module_path_is_refused_before_anything_runs(workspace: Workspace, chat: str) -> None:
    observed: list[str] = []

    def observe(ref: str, suite: Any) -> list[Observation]:
        observed.append(ref)
        return [Observation("lamp", 1.0)]

    for name in ("threading:settrace", "os:_exit", "os.system"):
        with pytest.raises(InvalidInput, match="no scorer named") as info:
            Evals(workspace, observe=observe).run(chat, _suite(name), actor=ALICE)
        assert "token_f1" in info.value.message  # says what may be named
    assert observed == []
    assert threading.gettrace() is None


def test_failing_hanging_and_dying_scorers_fail_their_case_only(
    workspace: Workspace, chat: str, plugins: None
) -> None:
    assert {"fine", "hangs", "dies", "token_f1", "keyword_overlap"} <= set(registered_scorers())
    suite = _suite("fine", "hangs", "fine", "dies", "traces", "token_f1")
    answers = [Observation("a lamp", 1.0)] * 6
    evals = Evals(workspace, observe=lambda ref, s: answers, scorer_timeout_s=1.0)
    run = evals.run(chat, suite, actor=ALICE)
    fine, hangs, fine_again, dies, traces, f1 = run.cases
    assert fine.passed and fine_again.passed and traces.passed
    assert not hangs.passed and "did not finish within 1 s" in hangs.checks[0].detail
    assert not dies.passed and "ended its process" in dies.checks[0].detail
    assert f1.passed and f1.score == pytest.approx(2 / 3)  # "a lamp" vs "lamp"
    assert threading.gettrace() is None  # the scorer's settrace stayed in its process
    assert evals.record(run.id).document()["summary"]["passed"] == 4


def test_the_scorer_process_restarts_after_a_crash(plugins: None) -> None:
    x = ScorerInput("a lamp", "p", "lamp", {})
    with ScorerProcess(timeout_s=5) as process:
        scorers = process.scorers(["dies", "fine"])
        with pytest.raises(Exception, match="ended its process"):
            scorers["dies"](x)
        assert scorers["fine"](x) == 1.0


@pytest.mark.anyio
async def test_the_api_refuses_a_module_path_and_keeps_serving(
    workspace: Workspace, chat: str
) -> None:
    boot = Tokens(workspace).bootstrap("alice")
    assert boot is not None
    app = create_app(workspace, authenticate=token_authenticator(workspace))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://airlock",
        headers={"Authorization": f"Bearer {boot.secret}"},
    ) as api:
        suite = "name: s\ncases: [{prompt: p, checks: [{scorer: 'threading:settrace'}]}]"
        r = await api.post(f"/api/v1/releases/{chat}/evaluations", json={"suite": suite})
        assert r.status_code == 400
        assert "registered scorers" in r.json()["error"]["message"]
        for _ in range(20):
            assert (await api.get("/api/v1/models")).status_code == 200
    assert threading.gettrace() is None


def test_builtin_scorers() -> None:
    assert token_f1(ScorerInput("the blue lamp", "p", "blue lamp", {})) == pytest.approx(0.8)
    assert token_f1(ScorerInput("nothing", "p", None, {})) == 0.0
    kw = ScorerInput("USB-C cable", "p", None, {"keywords": ["usb-c", "cable", "plug"]})
    assert keyword_overlap(kw) == pytest.approx(2 / 3)
    assert keyword_overlap(ScorerInput("USB-C", "p", None, {**kw.args, "min": 1})) == 1.0
    check_scorers(["token_f1", "keyword_overlap"])
