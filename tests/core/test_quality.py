"""Online quality metrics: sampling, the paired judge metric, judge wire and calibration."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from airlock.core.analysis import AnalysisSettings, MetricSettings, analyze
from airlock.core.calibration import agreement, may_gate, prediction_powered_mean, wilson
from airlock.core.judge import (
    PAIRWISE_PROMPT,
    POINTWISE_PROMPT,
    JudgeUnreadable,
    candidate_first,
    check_template,
    pairwise_prompt,
    read_choice,
    read_score,
)
from airlock.core.quality import (
    PAIRWISE_METRIC,
    JudgeSpec,
    QualitySettings,
    analysis_metrics,
    merged_custom,
    sampled,
)
from airlock.core.window import CLUSTERS, ReleaseWindow, custom_field
from airlock.errors import InvalidInput


def test_sampling_is_the_same_share_on_both_arms() -> None:
    ids = [f"chatcmpl-{i}" for i in range(40_000)]
    # the arm a request went to plays no part: split the ids any way, both halves sample 10 %
    arm_a = [i for n, i in enumerate(ids) if n % 7 < 2]
    arm_b = [i for n, i in enumerate(ids) if n % 7 >= 2]
    share_a = sum(sampled(i, 0.1) for i in arm_a) / len(arm_a)
    share_b = sum(sampled(i, 0.1) for i in arm_b) / len(arm_b)
    assert abs(share_a - 0.1) < 0.01 and abs(share_b - 0.1) < 0.01
    assert sampled("x", 1.0) and not sampled("x", 0.0)
    assert sampled("abc", 0.5) == sampled("abc", 0.5)  # deterministic


def test_a_judge_must_be_pinned_to_a_version() -> None:
    with pytest.raises(ValidationError, match="not pinned"):
        JudgeSpec(release="judge@production")
    with pytest.raises(ValidationError, match="not pinned"):
        JudgeSpec(release="judge@1.0.0", prompt="judge-prompt")
    assert JudgeSpec(release="judge@1.0.0", prompt="jp@2.0.0").release == "judge@1.0.0"


def test_quality_needs_something_to_score_and_clean_names() -> None:
    with pytest.raises(ValidationError, match="at least one scorer"):
        QualitySettings(sample=0.1)
    with pytest.raises(ValidationError, match="scorer name"):
        QualitySettings.model_validate({"scorers": {"a b": {"check": {"refusal": False}}}})
    assert not QualitySettings(sample=0.0).enabled


def test_scorers_become_custom_metrics_and_cannot_clash() -> None:
    q = QualitySettings.model_validate(
        {
            "scorers": {"no_refusal": {"check": {"refusal": False}, "tolerance": 0.5}},
            "judge": {"release": "j@1.0.0", "mode": "pairwise", "weight": 2},
        }
    )
    metrics = analysis_metrics(q)
    assert metrics["quality.no_refusal"].higher_is_better
    assert metrics["quality.no_refusal"].tolerance == 0.5
    assert not metrics[PAIRWISE_METRIC].higher_is_better
    assert metrics[PAIRWISE_METRIC].weight == 2
    with pytest.raises(ValueError, match=r"quality\.no_refusal"):
        merged_custom(metrics, q)


def _window(bad: np.ndarray, pairs: np.ndarray) -> ReleaseWindow:
    return ReleaseWindow(
        requests=int(pairs.sum()),
        custom={PAIRWISE_METRIC: (float(bad.sum()), float(pairs.sum()))},
        clusters={
            "requests": tuple(pairs),
            custom_field(PAIRWISE_METRIC, "successes"): tuple(bad),
            custom_field(PAIRWISE_METRIC, "trials"): tuple(pairs),
        },
    )


def _settings(alpha: float = 0.05) -> AnalysisSettings:
    q = QualitySettings.model_validate({"judge": {"release": "j@1.0.0", "mode": "pairwise"}})
    metrics = MetricSettings.model_validate(
        {
            "error_rate": {"enabled": False},
            "guardrail_rate": {"enabled": False},
            "latency": {"enabled": False},
            "ttft": {"enabled": False},
            "custom": analysis_metrics(q),
        }
    )
    return AnalysisSettings(alpha=alpha, min_requests=1, srm_alpha=0.0, metrics=metrics)


def _first_fail(
    seed: int, loss_share: float, looks: int, per_look: int = 32, spread: float = 4.0
) -> int | None:
    """Pairs judged before the paired metric fails (None: never within ``looks``).

    Traffic as the gateway produces it: 2,000 sticky users hashed to the analysis
    clusters, lognormal request rates (σ = 1.5: a few heavy users), 20 % ties, and
    each user's own share of losses among decisive pairs (beta-distributed around
    ``loss_share``, concentration ``spread``: 4 is an intra-user correlation of
    0.2): some users' prompts favour one release again and again.
    """
    rng = np.random.default_rng(seed)
    users = 2000
    rate = rng.lognormal(0.0, 1.5, users)
    rate *= per_look / rate.sum()
    cluster = rng.integers(0, CLUSTERS, users)
    own = rng.beta(spread * loss_share, spread * (1 - loss_share), users)
    probs = np.stack([0.8 * own, np.full(users, 0.2), 0.8 * (1 - own)], axis=1)
    settings = _settings()
    cand = stab = ReleaseWindow()
    for look in range(1, looks + 1):
        outcomes = rng.multinomial(rng.poisson(rate), probs)  # (users, [loss, tie, win])
        pairs = np.bincount(cluster, weights=outcomes.sum(axis=1), minlength=CLUSTERS)
        losses = np.bincount(cluster, weights=outcomes[:, 0], minlength=CLUSTERS)
        wins = np.bincount(cluster, weights=outcomes[:, 2], minlength=CLUSTERS)
        cand, stab = cand + _window(losses, pairs), stab + _window(wins, pairs)
        if analyze(cand, stab, settings).outcome == "fail":
            return look * per_look
    return None


def test_the_paired_metric_holds_its_level_on_sticky_uneven_users() -> None:
    seeds = range(100)
    false = sum(_first_fail(s, loss_share=0.5, looks=30) is not None for s in seeds)
    assert false / len(seeds) <= 0.05 + 0.04  # α = 0.05 over 30 looks, 100 seeds


def test_the_paired_metric_catches_a_candidate_that_loses_60_percent() -> None:
    # users who differ moderately (intra-user correlation 0.05)
    caught = [_first_fail(s, 0.6, looks=60, spread=19.0) for s in range(1000, 1030)]
    assert sum(c is not None for c in caught) >= 24  # 1,920 pairs: most runs catch it


def test_judge_prompts_and_answers() -> None:
    check_template(POINTWISE_PROMPT, "pointwise")
    check_template(PAIRWISE_PROMPT, "pairwise")
    with pytest.raises(InvalidInput, match="answer_b"):
        check_template("{prompt} {answer_a}", "pairwise")
    with pytest.raises(InvalidInput, match="does not fill"):
        check_template("{prompt} {answer} {secret}", "pointwise")
    assert read_score("Score: 10") == 1.0 and read_score("score = 1") == 0.0
    assert read_score(" 7 / 10 ") == pytest.approx(6 / 9)
    with pytest.raises(JudgeUnreadable):
        read_score("I cannot grade this")
    with pytest.raises(JudgeUnreadable):
        read_score("Score: 42")
    assert read_choice("A", candidate_is_a=True) == "win"
    assert read_choice("Answer B is better", candidate_is_a=True) == "loss"
    assert read_choice("b", candidate_is_a=False) == "win"
    assert read_choice("Tie.", candidate_is_a=False) == "tie"
    with pytest.raises(JudgeUnreadable):
        read_choice("both are fine", candidate_is_a=True)
    text = pairwise_prompt(PAIRWISE_PROMPT, "q", "CAND", "STAB", candidate_is_a=False)
    assert text.index("STAB") < text.index("CAND")


def test_the_candidate_is_shown_first_half_the_time() -> None:
    firsts = sum(candidate_first(f"id-{i}") for i in range(20_000))
    assert 9_600 < firsts < 10_400


def test_agreement_and_the_gate() -> None:
    found = agreement([1, 1, 0, 0, 1], [1, 0, 0, 0, 1])
    assert (found.labels, found.agree) == (5, 4)
    assert found.low < 0.8 < found.high
    ok, why = may_gate(found, 0.7, 30)
    assert not ok and "5 human label" in why
    good = agreement([1] * 90 + [0] * 10, [1] * 88 + [0] * 12)
    assert may_gate(good, 0.9, 30)[0]
    assert not may_gate(good, 0.97, 30)[0]
    assert may_gate(agreement([], []), 0.0, 30)[0]


def test_wilson_interval_covers_at_its_level() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(2000):
        p = rng.uniform(0.6, 0.95)
        k = int(rng.binomial(60, p))
        low, high = wilson(k, 60)
        covered += low <= p <= high
    assert covered / 2000 >= 0.93


def test_prediction_powered_mean_is_unbiased_with_a_biased_judge_and_covers() -> None:
    rng = np.random.default_rng(11)
    covered, widths_ppi, widths_human = 0, [], []
    trials = 600
    for _ in range(trials):
        truth = rng.uniform(0.6, 0.9)
        human_all = rng.random(5000) < truth
        # a judge that is right 90 % of the time but also passes 10 % of true failures extra
        judge_all = np.where(rng.random(5000) < 0.9, human_all, rng.random(5000) < 0.7)
        labelled = rng.choice(5000, 100, replace=False)
        mask = np.zeros(5000, bool)
        mask[labelled] = True
        est = prediction_powered_mean(
            judge_all[mask].astype(float), human_all[mask].astype(float), judge_all[~mask] * 1.0
        )
        true_mean = human_all.mean()
        covered += est.low <= true_mean <= est.high
        widths_ppi.append(est.high - est.low)
        h = human_all[mask].mean()
        widths_human.append(2 * 1.96 * np.sqrt(h * (1 - h) / 100))
    assert covered / trials >= 0.93
    assert np.median(widths_ppi) < np.median(widths_human)  # the judge buys precision


def test_a_rollout_spec_carries_quality_into_the_analysis() -> None:
    from airlock.core.rollout_spec import parse_spec

    spec = parse_spec(
        """
        strategy: canary
        steps: [{weight_pct: 10, bake_seconds: 60}, {weight_pct: 100, bake_seconds: 60}]
        quality:
          sample: 0.2
          scorers: {no_refusal: {check: {refusal: false}, tolerance: 0.5, weight: 2}}
          judge: {release: judge@1.0.0, prompt: judge-prompt@1.0.0, mode: pairwise}
        """
    )
    judged = spec.judged_analysis
    assert judged.metrics.custom["quality.no_refusal"].tolerance == 0.5
    assert "custom.pairwise.judge" in judged.weights()
    assert "quality.no_refusal" not in spec.analysis.metrics.custom  # the spec as written
    assert parse_spec(spec.to_dict()) == spec  # round-trips through the catalog's JSON
    with pytest.raises(InvalidInput, match="judge@production"):
        parse_spec(
            {
                "strategy": "shadow",
                "duration_seconds": 60,
                "quality": {"judge": {"release": "judge@production"}},
            }
        )
    with pytest.raises(InvalidInput, match="defines too"):
        parse_spec(
            {
                "strategy": "shadow",
                "duration_seconds": 60,
                "analysis": {"metrics": {"custom": {"quality.x": {}}}},
                "quality": {"scorers": {"x": {"check": {"json": True}}}},
            }
        )


def test_a_metric_that_may_not_gate_is_reported_but_never_rolls_back() -> None:
    from airlock.core.quality import not_gating

    settings = _settings()
    rng = np.random.default_rng(5)
    pairs = rng.multinomial(2000, np.full(CLUSTERS, 1 / CLUSTERS)).astype(float)
    losses = np.round(pairs * 0.7)  # the candidate loses 70 % of every pair
    wins = pairs - losses
    cand, stab = _window(losses, pairs), _window(wins, pairs)
    assert analyze(cand, stab, settings).outcome == "fail"
    judge = JudgeSpec(release="j@1.0.0", mode="pairwise")
    muted = not_gating(settings, judge, "agreement with people 55 % < 70 %")
    verdict = analyze(cand, stab, muted)
    assert verdict.outcome != "fail"
    reason = verdict.metric(f"custom.{PAIRWISE_METRIC}").reason
    assert reason.startswith("not gating (agreement with people 55 % < 70 %)")
    assert muted.weights() == settings.weights()  # its α share stays reserved
