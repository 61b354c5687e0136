"""Offline evaluation on real built-in releases: two releases trained on different corpora
differ significantly on the quality suite and not at all on the safety suite; the runs are
stored with the release and gate alias moves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lumen import SUITES, push_lumen

from airlock import audit
from airlock.core.evalsuite import Observation, parse_suite
from airlock.errors import InvalidInput, PolicyViolation
from airlock.services.evals import Evals, load_suite
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

ALICE = Actor("alice", "admin")
CAROL = Actor("carol", "author")
OPS = Actor("olga", "operator")

POLICY = """\
stages:
  production:
    evals:
      - {suite: quality, min_pass_rate: 0.4, max_regression: 0.05, confidence: 0.95}
      - {suite: safety, min_pass_rate: 1.0}
"""


@pytest.fixture
def lumen(workspace: Workspace, tmp_path: Path) -> Workspace:
    reg = Registry(workspace)
    push_lumen(reg, tmp_path, version="1.0.0", corpus="corpus_v1.txt", actor=CAROL)
    push_lumen(reg, tmp_path, version="1.1.0", corpus="corpus_v2.txt", actor=CAROL,
               parent="lumen@1.0.0")  # fmt: skip
    reg.set_alias("production", "lumen@1.0.0", actor=OPS, reason="launch")
    Governance(workspace).set_policy("lumen", POLICY, actor=ALICE, reason="eval gates")
    return workspace


def test_quality_differs_significantly_and_safety_does_not(
    lumen: Workspace, tmp_path: Path
) -> None:
    reg, evals, gov = Registry(lumen), Evals(lumen), Governance(lumen)
    with pytest.raises(PolicyViolation, match="no evaluation run of suite quality"):
        reg.set_alias("production", "lumen@1.1.0", actor=OPS, reason="new lamp")

    quality = evals.run("lumen@1.1.0", SUITES / "quality.yaml", baseline="lumen@1.0.0", actor=CAROL)
    assert quality.n == 30 and quality.baseline == "lumen@1.0.0"
    assert quality.pass_rate is not None and quality.score is not None
    assert quality.pass_rate.significant() and quality.pass_rate.ci.low > 0.15
    assert quality.pass_rate.improved >= 10 > quality.pass_rate.regressed
    assert quality.score.significant() and quality.score.delta > 0

    safety = evals.run("lumen@1.1.0", SUITES / "safety.yaml", baseline="lumen@1.0.0", actor=CAROL)
    assert safety.pass_rate is not None
    assert not safety.significant() and safety.pass_rate.delta == 0
    assert safety.passed == safety.n  # refusals refused, ordinary questions answered cleanly
    refused = {c.id: c for c in safety.cases}["bomb"]
    assert refused.output == "Sorry, I can only help with questions about your Lumen lamp."

    # stored with the release, with every case and the audit event
    runs = evals.runs("lumen@1.1.0")
    assert [(r.suite, r.cases) for r in runs] == [("quality", 30), ("safety", 14)]
    row = evals.record(runs[0].id)
    record = row.document()
    assert record["baseline"] == "lumen@1.0.0" and len(record["cases"]) == 30
    assert record["comparison"]["pass_rate"]["p_value"] == pytest.approx(quality.pass_rate.p_value)
    assert all("baseline" in c and "output" in c for c in record["cases"])
    assert row.p_value == pytest.approx(quality.pass_rate.p_value)
    with lumen.db.read() as conn:
        event = next(iter(audit.entries(conn, action="eval.run")))
    assert event.actor == "carol" and event.details["run"] == runs[0].id
    assert event.details["suite_digest"] == load_suite(SUITES / "quality.yaml").digest()

    # and they open the gate
    verdict = gov.check("lumen@1.1.0", "production")
    assert verdict.ok, verdict.summary()
    assert reg.set_alias("production", "lumen@1.1.0", actor=OPS, reason="new lamp").moved


def test_a_regression_against_the_serving_release_is_blocked(
    lumen: Workspace, tmp_path: Path
) -> None:
    reg, evals, gov = Registry(lumen), Evals(lumen), Governance(lumen)
    for suite in ("quality", "safety"):
        evals.run("lumen@1.1.0", SUITES / f"{suite}.yaml", baseline="lumen@1.0.0", actor=CAROL)
    reg.set_alias("production", "lumen@1.1.0", actor=OPS, reason="new lamp")

    # the old model again, as a new version: worse than what production serves now
    push_lumen(reg, tmp_path, version="1.2.0", corpus="corpus_v1.txt", actor=CAROL)
    stale = evals.run("lumen@1.2.0", SUITES / "quality.yaml", baseline="lumen@1.0.0", actor=CAROL)
    assert not stale.significant()  # the same model as 1.0.0: no difference
    verdict = gov.check("lumen@1.2.0", "production")
    why = {r.rule: r.why for r in verdict.failures}
    assert (
        "compared with lumen@1.0.0, but the baseline is lumen@1.1.0"
        in why["eval:quality:vs-baseline"]
    )

    worse = evals.run("lumen@1.2.0", SUITES / "quality.yaml", baseline="lumen@1.1.0", actor=CAROL)
    assert worse.pass_rate is not None and worse.pass_rate.significant()
    assert worse.pass_rate.delta < 0
    evals.run("lumen@1.2.0", SUITES / "safety.yaml", baseline="lumen@1.1.0", actor=CAROL)
    with pytest.raises(PolicyViolation) as info:
        reg.set_alias("production", "lumen@1.2.0", actor=OPS, reason="rollback by release")
    assert "eval:quality (pass rate" in info.value.message
    assert "eval:quality:vs-baseline (Δ pass rate -" in info.value.message
    assert "eval:safety" not in info.value.message
    assert reg.show("lumen@production").row.version == "1.1.0"


def test_custom_scorers_from_entry_points_never_module_paths(
    workspace: Workspace, make_model: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "lumen_scorers-1.0.dist-info").mkdir(parents=True)
    (plugins / "lumen_scorers-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lumen-scorers\nVersion: 1.0\n"
    )
    (plugins / "lumen_scorers-1.0.dist-info" / "entry_points.txt").write_text(
        "[airlock.scorers]\nword_overlap = lumen_scorers:word_overlap\n"
        "broken = lumen_scorers:broken\n"
    )
    (plugins / "lumen_scorers.py").write_text(
        "def word_overlap(x):\n"
        "    want = set(x.reference.lower().split())\n"
        "    return len(want & set(x.output.lower().split())) / len(want)\n"
        "def broken(x):\n"
        "    raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.delitem(sys.modules, "lumen_scorers", raising=False)
    assert callable(make_model)
    Registry(workspace).push(make_model(seed=5), name="chat", version="1.0.0", actor=ALICE)
    suite = parse_suite(
        """
name: scored
cases:
  - {id: a, prompt: p, reference: blue lamp light, checks: [{scorer: word_overlap, threshold: 0.6}]}
  - {id: b, prompt: p, reference: red, checks: [{scorer: broken}]}
""",
        default_name="x",
    )
    answers = [Observation("a blue lamp", 5.0), Observation("red", 5.0)]
    run = Evals(workspace, observe=lambda ref, s: answers).run("chat@1.0.0", suite, actor=ALICE)
    a, b = run.cases
    assert a.score == pytest.approx(2 / 3) and a.passed
    assert not b.passed and "scorer failed: RuntimeError: boom" in b.checks[0].detail
    bad = parse_suite("cases: [{prompt: p, checks: [{scorer: nope}]}]", default_name="x")
    with pytest.raises(InvalidInput, match=r"no scorer named 'nope'.*word_overlap"):
        Evals(workspace, observe=lambda ref, s: answers).run("chat@1.0.0", bad, actor=ALICE)
    path = parse_suite(
        "cases: [{prompt: p, checks: [{scorer: 'lumen_scorers:broken'}]}]", default_name="x"
    )
    with pytest.raises(InvalidInput, match="registered scorers, not Python functions"):
        Evals(workspace, observe=lambda ref, s: answers).run("chat@1.0.0", path, actor=ALICE)


def test_suites_from_jsonl_and_bad_input(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "Smoke Test.jsonl"
    first = {"prompt": "hi", "checks": [{"contains": "hello"}]}
    second = {
        "id": "j",
        "messages": [{"role": "user", "content": "x"}],
        "checks": [{"json": True, "required_keys": ["a"]}],
    }
    path.write_text(json.dumps(first) + "\n\n" + json.dumps(second) + "\n")
    suite = load_suite(path)
    assert suite.name == "smoke-test" and [c.id for c in suite.cases] == ["case-1", "j"]
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    with pytest.raises(InvalidInput, match="not valid JSONL"):
        load_suite(tmp_path / "bad.jsonl")
    Registry(workspace).push(tmp_path / "bad.jsonl", name="x", version="1.0.0", actor=ALICE)
    with pytest.raises(InvalidInput, match="cannot be its own baseline"):
        Evals(workspace).run("x@1.0.0", suite, baseline="x@1.0.0", actor=ALICE)


def test_a_policy_can_pin_the_suite_version(workspace: Workspace, make_model: object) -> None:
    assert callable(make_model)
    Registry(workspace).push(make_model(seed=6), name="chat", version="1.0.0", actor=CAROL)
    strict = parse_suite(
        "name: quality\ncases: [{prompt: p, checks: [{contains: lamp}]}]", default_name="x"
    )
    easy = parse_suite("name: quality\ncases: [{prompt: p, checks: [{max_chars: 999}]}]",
                       default_name="x")  # fmt: skip
    gov = Governance(workspace)
    gov.set_policy(
        "chat",
        "stages: {production: {evals: [{suite: quality, min_pass_rate: 1.0, "
        f"digest: '{strict.digest()}'}}]}}}}",
        actor=ALICE,
    )
    evals = Evals(workspace, observe=lambda ref, s: [Observation("a lamp", 1.0)])
    evals.run("chat@1.0.0", strict, actor=CAROL)
    evals.run("chat@1.0.0", easy, actor=CAROL)  # newer, but not the pinned suite
    verdict = gov.check("chat@1.0.0", "production")
    assert verdict.ok and "run #1" in verdict.results[-1].why
    gov.set_policy(
        "chat",
        "stages: {production: {evals: [{suite: quality, digest: 'sha256:" + "0" * 64 + "'}]}}",
        actor=ALICE,
    )
    failed = gov.check("chat@1.0.0", "production").failures
    assert "another version of suite quality" in failed[0].why
