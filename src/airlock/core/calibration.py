"""How far the judge can be trusted: its agreement with people, and what people would say.

Input: a labelled sample — for some judged answers, the judge's label and a
person's (feedback thumbs, or ``airlock judge label``), both pass/fail or
scores in [0, 1] — and optionally the judge's labels on the unlabelled rest.

* :func:`agreement` — the share of labelled answers where judge and person
  agree (pass/fail at 0.5), with a Wilson score interval (Wilson 1927) and
  Cohen's κ (agreement beyond chance; Cohen 1960). A judge whose agreement's
  *lower* 95 % bound is below the spec's ``min_agreement`` (or that has fewer
  than ``min_labels`` labels) cannot gate a rollout: its metric is reported,
  never acted on (:func:`may_gate`).
* :func:`prediction_powered_mean` — the pass rate people would give a release,
  from a few human labels and many judge labels: the judge's mean on the
  unlabelled answers corrected by the mean judge−human error on the labelled
  ones ("rectifier"), with a normal interval whose variance adds both parts
  (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic 2023, "Prediction-powered
  inference", *Science* 382, eq. 1 and Theorem 1 for the mean). It is unbiased
  whatever the judge's error, and narrower than the human-only interval when
  the judge is good.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Agreement:
    labels: int
    agree: int
    share: float
    low: float
    high: float
    kappa: float

    def describe(self) -> str:
        if not self.labels:
            return "no human labels yet"
        return (
            f"agrees with people on {self.agree}/{self.labels} "
            f"({self.share:.0%}, 95 % CI {self.low:.0%}–{self.high:.0%}, κ = {self.kappa:.2f})"
        )


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial share; (0, 1) with no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement(judge: Sequence[float], human: Sequence[float]) -> Agreement:
    """Agreement of pass/fail labels (a score counts as a pass at ≥ 0.5)."""
    if len(judge) != len(human):
        raise ValueError(f"{len(judge)} judge labels but {len(human)} human labels")
    j = [x >= 0.5 for x in judge]
    h = [x >= 0.5 for x in human]
    n = len(j)
    agree = sum(a == b for a, b in zip(j, h, strict=True))
    low, high = wilson(agree, n)
    if not n:
        return Agreement(0, 0, 0.0, low, high, 0.0)
    observed = agree / n
    pj, ph = sum(j) / n, sum(h) / n
    chance = pj * ph + (1 - pj) * (1 - ph)
    kappa = 1.0 if chance >= 1.0 else (observed - chance) / (1 - chance)
    return Agreement(n, agree, observed, low, high, kappa)


def may_gate(found: Agreement, min_agreement: float, min_labels: int) -> tuple[bool, str]:
    """Whether a judge with ``found`` agreement may roll a release back, and why not."""
    if min_agreement <= 0.0:
        return True, "no agreement required"
    if found.labels < min_labels:
        return False, f"only {found.labels} human label(s); {min_labels} needed to trust the judge"
    if found.low < min_agreement:
        return False, (
            f"agreement's lower bound {found.low:.0%} is below the required {min_agreement:.0%}"
        )
    return True, f"agreement's lower bound {found.low:.0%} ≥ {min_agreement:.0%}"


@dataclass(frozen=True, slots=True)
class Estimate:
    mean: float
    low: float
    high: float
    n_labelled: int
    n_unlabelled: int


def prediction_powered_mean(
    judge_labelled: Sequence[float],
    human_labelled: Sequence[float],
    judge_unlabelled: Sequence[float],
    *,
    confidence: float = 0.95,
) -> Estimate:
    """Prediction-powered estimate of the mean human label (Angelopoulos et al. 2023)."""
    n, big_n = len(human_labelled), len(judge_unlabelled)
    if len(judge_labelled) != n:
        raise ValueError(f"{len(judge_labelled)} judge labels but {n} human labels")
    if n < 2:
        raise ValueError("a prediction-powered estimate needs at least 2 human labels")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rect = [h - j for h, j in zip(human_labelled, judge_labelled, strict=True)]
    rect_mean = math.fsum(rect) / n
    rect_var = math.fsum((r - rect_mean) ** 2 for r in rect) / (n - 1)
    if big_n >= 2:
        f_mean = math.fsum(judge_unlabelled) / big_n
        f_var = math.fsum((f - f_mean) ** 2 for f in judge_unlabelled) / (big_n - 1)
        mean, var = f_mean + rect_mean, f_var / big_n + rect_var / n
    else:  # no judge labels to lean on: the classical estimate from people alone
        mean = math.fsum(human_labelled) / n
        var = math.fsum((h - mean) ** 2 for h in human_labelled) / (n - 1) / n
    half = z * math.sqrt(var)
    return Estimate(mean, mean - half, mean + half, n, big_n)
