"""Policy as data: parsing, each rule blocking and passing, risk classes from manifest diffs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.core.diff import diff_manifests
from airlock.core.digest import digest_bytes
from airlock.core.manifest import (
    KNOWN_ROLES,
    CodeRef,
    Component,
    Dataset,
    FileEntry,
    FileFormat,
    Lineage,
    Manifest,
    Notes,
)
from airlock.core.policy import (
    ApprovalFact,
    EvalFact,
    ReleaseFacts,
    RiskClass,
    RiskCondition,
    SignatureFact,
    derive_risk,
    evaluate,
    parse_policy,
)
from airlock.errors import InvalidInput

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def manifest(
    version: str = "1.1.0",
    *,
    author: str = "alice",
    params: int = 1000,
    components: dict[str, Component] | None = None,
    datasets: tuple[Dataset, ...] = (),
    notes: Notes | None = None,
    pickle: bool = False,
    config: dict[str, Any] | None = None,
    commit: str | None = None,
) -> Manifest:
    files = [
        FileEntry(
            path="model.safetensors",
            digest=digest_bytes(f"w{params}".encode()),
            size=params * 4,
            format=FileFormat(kind="safetensors", parameters=params),
        )
    ]
    if pickle:
        files.append(
            FileEntry(
                path="extra.bin",
                digest=digest_bytes(b"p"),
                size=1,
                format=FileFormat(kind="pickle", unsafe=True),
            )
        )
    return Manifest(
        name="chat",
        version=version,
        files=tuple(files),
        components=components or {},
        lineage=Lineage(
            datasets=datasets,
            training_config=config or {},
            code=CodeRef(commit=commit) if commit else None,
        ),
        notes=notes or Notes(summary="a release"),
        author=author,
        created_at=T0,
    )


BASE = manifest("1.0.0", components={"safety_policy": Component(ref="guard@1.0.0")})


def facts(new: Manifest, base: Manifest | None = BASE, **kw: Any) -> ReleaseFacts:
    return ReleaseFacts(
        manifest=new,
        digest=new.digest(),
        baseline=base,
        baseline_digest=base.digest() if base else None,
        baseline_source="chat@production" if base else None,
        **kw,
    )


def approve(actor: str, role: str = "approver", *, minutes: int = 0, **kw: Any) -> ApprovalFact:
    base: dict[str, Any] = {"decision": "approve", "stage": "production", "comment": ""}
    base.update(kw)
    return ApprovalFact(actor=actor, role=role, at=T0 + timedelta(minutes=minutes), **base)


POLICY = parse_policy(
    """
description: chat rules
stages:
  production:
    approvals: {required: 1}
    evals:
      - {suite: quality, min_pass_rate: 0.6, max_regression: 0.05, confidence: 0.95}
    max_changed_components: 1
    allow_pickle: false
    require_signature: true
    required_notes: [summary]
risk_classes:
  - name: safety-change
    when: {components_changed: [safety_policy]}
    require: {approvals: 2, risk_assessment: true, min_canary_minutes: 60, shadow_first: true}
  - name: size-change
    when: {parameters_change_pct: 10}
    require: {min_canary_minutes: 15}
"""
)


def good_eval(n: int = 100, *, baseline: Manifest | None = BASE) -> EvalFact:
    passed = tuple([True] * (n - 2) + [False] * 2)
    return EvalFact(
        suite="quality",
        run_id=7,
        passed=passed,
        scores=tuple(float(p) for p in passed),
        baseline_digest=baseline.digest() if baseline else None,
        baseline_ref=baseline.ref if baseline else None,
        baseline_passed=passed if baseline else None,
        baseline_scores=tuple(float(p) for p in passed) if baseline else None,
    )


SIGNED = (SignatureFact("k1", "release-bot", True, "ok"),)


def passing_facts(new: Manifest | None = None, **kw: Any) -> ReleaseFacts:
    new = new or manifest(components={"safety_policy": Component(ref="guard@1.0.0")})
    defaults: dict[str, Any] = {
        "approvals": (approve("bob"),),
        "evals": {"quality": good_eval()},
        "signatures": SIGNED,
    }
    defaults.update(kw)
    return facts(new, **defaults)


def rules(verdict: Any) -> dict[str, bool]:
    return {r.rule: r.passed for r in verdict.results}


def test_a_release_meeting_every_rule_passes() -> None:
    v = evaluate(POLICY, "production", passing_facts(), policy_version=3)
    assert v.ok, v.summary()
    assert set(rules(v)) == {
        "approvals",
        "no-rejection",
        "eval:quality",
        "eval:quality:vs-baseline",
        "max-changed-components",
        "no-pickle",
        "signature",
        "notes.summary",
    }
    assert v.risk == () and v.policy_version == 3 and v.baseline_ref == "chat@1.0.0"


def test_no_policy_or_no_rules_for_the_stage_means_nothing_to_satisfy() -> None:
    assert evaluate(None, "production", passing_facts()).ok
    v = evaluate(POLICY, "staging", passing_facts())
    assert v.ok and v.results == ()


def test_the_wildcard_stage_covers_other_aliases() -> None:
    p = parse_policy('stages: {"*": {allow_pickle: false}}')
    v = evaluate(p, "staging", passing_facts(manifest(pickle=True)))
    assert not v.ok and v.failures[0].rule == "no-pickle" and "extra.bin" in v.failures[0].why


@pytest.mark.parametrize(
    ("change", "rule", "why"),
    [
        ({"approvals": ()}, "approvals", "0 of 1 approval(s)"),
        ({"approvals": (approve("alice"),)}, "approvals", "alice is the author"),
        ({"approvals": (approve("carol", "operator"),)}, "approvals", "carol approved as operator"),
        (
            {"approvals": (approve("bob"), approve("dave", decision="reject", comment="toxic"))},
            "no-rejection",
            "rejected for production by dave (approver)",
        ),
        ({"evals": {}}, "eval:quality", "no evaluation run of suite quality"),
        ({"signatures": ()}, "signature", "unsigned"),
        (
            {"signatures": (SignatureFact("k9", None, False, "key k9 is not trusted"),)},
            "signature",
            "not trusted",
        ),
    ],
)
def test_each_rule_blocks_with_its_reason(change: dict[str, Any], rule: str, why: str) -> None:
    v = evaluate(POLICY, "production", passing_facts(**change))
    assert not v.ok
    failed = {r.rule: r.why for r in v.failures}
    assert rule in failed and why in failed[rule], failed
    assert rule in v.summary()


def test_absolute_threshold_blocks_a_weak_release() -> None:
    weak = replace(good_eval(40), passed=(True,) * 20 + (False,) * 20, scores=(0.5,) * 40)
    v = evaluate(POLICY, "production", passing_facts(evals={"quality": weak}))
    why = {r.rule: r.why for r in v.failures}
    assert "pass rate 0.500 (20/40) < 0.6" in why["eval:quality"]


def test_regression_bound_uses_paired_confidence() -> None:
    base_passed = (True,) * 36 + (False,) * 4
    worse = (False,) * 8 + (True,) * 28 + (False,) * 4  # 8 regressions, no improvements
    run = replace(good_eval(40), passed=worse, baseline_passed=base_passed)
    v = evaluate(POLICY, "production", passing_facts(evals={"quality": run}))
    r = {x.rule: x for x in v.results}["eval:quality:vs-baseline"]
    assert not r.passed and "Δ pass rate -0.200" in r.why and "lower 95% bound" in r.why
    slightly = (False,) + (True,) * 35 + (False,) * 4  # one regression: within noise
    run = replace(good_eval(40), passed=slightly, baseline_passed=base_passed)
    lenient = parse_policy("stages: {production: {evals: [{suite: quality, max_regression: 0.1}]}}")
    assert evaluate(lenient, "production", passing_facts(evals={"quality": run})).ok


def test_a_run_against_another_baseline_does_not_count() -> None:
    other = manifest("0.9.0")
    run = good_eval(baseline=other)
    v = evaluate(POLICY, "production", passing_facts(evals={"quality": run}))
    why = {r.rule: r.why for r in v.failures}["eval:quality:vs-baseline"]
    assert "compared with chat@0.9.0, but the baseline is chat@1.0.0" in why
    assert "--baseline chat@1.0.0" in why


def test_first_release_has_nothing_to_regress_from() -> None:
    new = manifest("1.0.0")
    v = evaluate(
        POLICY,
        "production",
        facts(
            new,
            base=None,
            approvals=(approve("bob"),),
            evals={"quality": good_eval(baseline=None)},
            signatures=SIGNED,
        ),
    )
    assert v.ok, v.summary()
    assert "no baseline yet" in {r.rule: r.why for r in v.results}["eval:quality:vs-baseline"]


def test_latest_decision_per_person_counts_once() -> None:
    twice = (approve("bob"), approve("bob", minutes=5))
    v = evaluate(POLICY, "production", passing_facts(approvals=twice))
    assert "1 of 1 approval(s) for production: bob (approver)" in v.results[0].why
    withdrawn = (approve("bob"), approve("bob", minutes=5, decision="reject"))
    v = evaluate(POLICY, "production", passing_facts(approvals=withdrawn))
    assert {r.rule for r in v.failures} == {"approvals", "no-rejection"}
    reconsidered = (approve("bob", decision="reject"), approve("bob", minutes=5))
    assert evaluate(POLICY, "production", passing_facts(approvals=reconsidered)).ok
    other_stage = (approve("bob", stage="candidate"),)
    assert not evaluate(POLICY, "production", passing_facts(approvals=other_stage)).ok


def test_risk_class_raises_the_bar_and_sets_rollout_requirements() -> None:
    new = manifest(
        components={"safety_policy": Component(ref="guard@2.0.0")},
        notes=Notes(summary="looser filter"),
    )
    v = evaluate(POLICY, "production", passing_facts(new))
    assert [m.name for m in v.risk] == ["safety-change"]
    assert "component safety_policy changed (guard@1.0.0 → guard@2.0.0)" in v.risk[0].reasons
    failed = {r.rule: r for r in v.failures}
    assert set(failed) == {"approvals", "risk-assessment"}
    assert failed["approvals"].source == "risk class safety-change"
    assert "1 of 2 approval(s)" in failed["approvals"].why
    assert v.rollout.min_canary_minutes == 60 and v.rollout.shadow_first
    assessed = new.model_copy(
        update={"notes": Notes(summary="looser filter", risk_assessment="red-teamed, see doc")}
    )
    v = evaluate(
        POLICY,
        "production",
        passing_facts(assessed, approvals=(approve("bob"), approve("carol", "admin"))),
    )
    assert v.ok, v.summary()


def test_max_changed_components() -> None:
    new = manifest(
        components={
            "safety_policy": Component(ref="guard@1.0.0"),
            "tokenizer": Component(ref="tok@1.0.0"),
            "prompt_template": Component(ref="tpl@1.0.0"),
        }
    )
    v = evaluate(POLICY, "production", passing_facts(new))
    why = {r.rule: r.why for r in v.failures}["max-changed-components"]
    assert "2 component(s) changed vs chat@1.0.0: prompt_template, tokenizer (> 1)" in why


def test_required_notes() -> None:
    same_parts = {"safety_policy": Component(ref="guard@1.0.0")}
    v = evaluate(
        POLICY, "production", passing_facts(manifest(notes=Notes(), components=same_parts))
    )
    assert {r.rule for r in v.failures} == {"notes.summary"}


def test_required_lineage_names_what_is_missing() -> None:
    policy = parse_policy("stages: {production: {require_lineage: true}}")
    bare = evaluate(policy, "production", facts(manifest()))
    assert rules(bare) == {"lineage": False, "no-rejection": True}
    why = {r.rule: r.why for r in bare.failures}["lineage"]
    assert "no datasets" in why and "no code commit" in why
    data = (Dataset(name="train", digest=digest_bytes(b"rows")),)
    traced = evaluate(policy, "production", facts(manifest(datasets=data, commit="a" * 40)))
    assert traced.ok


def test_size_change_class_on_parameter_count() -> None:
    grown = manifest(params=1200, components={"safety_policy": Component(ref="guard@1.0.0")})
    v = evaluate(POLICY, "production", passing_facts(grown))
    assert [m.name for m in v.risk] == ["size-change"]
    assert "20.0 %" in v.risk[0].reasons[0] and v.rollout.min_canary_minutes == 15
    small = manifest(params=1050, components={"safety_policy": Component(ref="guard@1.0.0")})
    assert evaluate(POLICY, "production", passing_facts(small)).risk == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: [1, 2]", "stages: Input should be a valid dictionary"),
        ("stages: {Production: {}}", "invalid alias name"),
        ("stages: {production: {approvals: {required: -1}}}", "required"),
        ("stages: {production: {approvals: {roles: [boss]}}}", "roles"),
        ("stages: {production: {evals: [{suite: q, confidence: 1.5}]}}", "confidence"),
        ("stages: {production: {typo: 1}}", "typo"),
        ("risk_classes: [{name: x, when: {}}]", "has no condition"),
        (
            "risk_classes: [{name: x, when: {code_changed: true}}, {name: x, when: {code_changed: true}}]",
            "repeated: x",
        ),
        ("- a list", "must be a mapping"),
        ("stages: {production: [", "not valid YAML"),
    ],
)
def test_bad_policies_are_named(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match="policy") as info:
        parse_policy(text)
    assert message in info.value.message


def test_policy_digest_ignores_formatting() -> None:
    a = parse_policy("stages: {production: {approvals: {required: 2}}}")
    b = parse_policy("stages:\n  production:\n    approvals:\n      required: 2\n")
    assert a.digest() == b.digest()
    assert parse_policy("").digest() != a.digest()


# -- risk class derivation: property tests ------------------------------------------------

refs = st.sampled_from(["a@1.0.0", "a@1.1.0", "b@2.0.0", "c@0.1.0"])
component_maps = st.dictionaries(
    st.sampled_from(KNOWN_ROLES), refs.map(lambda r: Component(ref=r)), max_size=4
)
dataset_sets = st.lists(
    st.builds(
        Dataset,
        name=st.sampled_from(["chats", "faq", "web"]),
        digest=st.binary(min_size=1, max_size=3).map(digest_bytes),
    ),
    max_size=3,
    unique_by=lambda d: d.name,
).map(tuple)
manifests = st.builds(
    manifest,
    params=st.integers(min_value=1, max_value=10_000),
    components=component_maps,
    datasets=dataset_sets,
    config=st.dictionaries(st.sampled_from(["lr", "epochs"]), st.integers(0, 3), max_size=2),
    commit=st.sampled_from([None, "abc", "def"]),
)
conditions = st.builds(
    RiskCondition,
    components_changed=st.lists(st.sampled_from(KNOWN_ROLES), max_size=3, unique=True).map(tuple),
    datasets_changed=st.booleans(),
    training_config_changed=st.booleans(),
    code_changed=st.booleans(),
    parameters_change_pct=st.one_of(st.none(), st.floats(min_value=0, max_value=200)),
)


def as_class(cond: RiskCondition, name: str = "r") -> list[RiskClass]:
    return [] if cond.is_empty() else [RiskClass(name=name, when=cond)]


@given(manifests, conditions)
@settings(max_examples=200, deadline=None)
def test_no_change_means_no_risk(m: Manifest, cond: RiskCondition) -> None:
    assert derive_risk(as_class(cond), diff_manifests(m, m)) == ()


@given(manifests, manifests, conditions)
@settings(max_examples=200, deadline=None)
def test_risk_is_symmetric_in_what_changed(a: Manifest, b: Manifest, cond: RiskCondition) -> None:
    """Going from a to b or back touches the same components, data, code and sizes."""
    forward = derive_risk(as_class(cond), diff_manifests(a, b))
    backward = derive_risk(as_class(cond), diff_manifests(b, a))
    if cond.parameters_change_pct is None:  # a relative change is not symmetric
        assert bool(forward) == bool(backward)


@given(manifests, st.sampled_from(KNOWN_ROLES), refs)
@settings(max_examples=200, deadline=None)
def test_changing_a_component_triggers_exactly_its_classes(
    m: Manifest, role: str, ref: str
) -> None:
    current = m.components.get(role)
    if current is not None and current.ref == ref:
        return
    changed = m.model_copy(update={"components": {**m.components, role: Component(ref=ref)}})
    d = diff_manifests(m, changed)
    classes = [
        RiskClass(name=f"r-{r.replace('_', '-')}", when=RiskCondition(components_changed=(r,)))
        for r in KNOWN_ROLES
    ]
    matched = [x.name for x in derive_risk(classes, d)]
    assert matched == [f"r-{role.replace('_', '-')}"]


@given(manifests, manifests, conditions, conditions)
@settings(max_examples=200, deadline=None)
def test_conditions_combine_with_or(
    a: Manifest, b: Manifest, c1: RiskCondition, c2: RiskCondition
) -> None:
    d = diff_manifests(a, b)
    both = RiskCondition(
        components_changed=tuple(dict.fromkeys(c1.components_changed + c2.components_changed)),
        datasets_changed=c1.datasets_changed or c2.datasets_changed,
        training_config_changed=c1.training_config_changed or c2.training_config_changed,
        code_changed=c1.code_changed or c2.code_changed,
        parameters_change_pct=c1.parameters_change_pct,
    )
    one = RiskCondition(**{**c2.model_dump(), "parameters_change_pct": None})
    expected = bool(derive_risk(as_class(c1), d)) or bool(derive_risk(as_class(one), d))
    assert bool(derive_risk(as_class(both), d)) == expected


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.floats(0, 300))
@settings(max_examples=300, deadline=None)
def test_parameter_threshold(old: int, new: int, pct: float) -> None:
    d = diff_manifests(manifest(params=old), manifest(params=new))
    matched = bool(derive_risk(as_class(RiskCondition(parameters_change_pct=pct)), d))
    assert matched == (abs(new - old) / old * 100 > pct)


def test_first_release_condition() -> None:
    cls = [RiskClass(name="new-model", when=RiskCondition(first_release=True))]
    assert [m.name for m in derive_risk(cls, None)] == ["new-model"]
    assert derive_risk(cls, diff_manifests(BASE, BASE)) == ()
