"""Online quality: which live answers are scored, by what, and how a score becomes a metric.

A rollout spec (or a service's defaults) may carry a ``quality`` section::

    quality:
      sample: 0.1                  # share of answers scored, the same on both arms
      scorers:
        no_refusal: {check: {refusal: false}, tolerance: 0.5}
        valid_json: {check: {json: true, required_keys: [answer]}, weight: 2}
      judge:                       # optional: an LLM judge that is itself a release
        release: judge@1.0.0       # pinned: an exact version, never an alias
        prompt: judge-prompt@2.1.0 # pinned: the judge prompt, a versioned component
        mode: pairwise             # pointwise (score one answer) | pairwise (A vs B)
        min_agreement: 0.7         # with people; below it the judge cannot gate

Every scorer is one of the offline suites' checks (:class:`~airlock.core.evalsuite.Check`:
refusal, json, regex, contains, length, safety flags, a registered custom scorer),
applied to live answers off the request path. Each becomes a named live metric
that the analysis judges like the built-in ones (:func:`analysis_metrics`):

=====================  ==========================================  ==================
metric                 counts per release and cluster              harm
=====================  ==========================================  ==================
``quality.NAME``       (passes, scored answers)                    fewer passes
``judge.score``        (judge passes, judged answers)              fewer passes
``pairwise.judge``     candidate: (losses, pairs); stable: (wins,  more losses than
                       pairs) — one pair = both arms on one prompt  wins
=====================  ==========================================  ==================

The pairwise metric reuses the analysis's exact arm-label test unchanged: with
equal exposures on both sides each decisive pair is "candidate-labelled" (a
loss) with probability r / (1 + r), r = P(loss) / P(win), so the e-process is
the sequential sign test of H0: r ≤ 1 + tolerance — the paired comparison
without between-prompt variance (Lindon & Malek 2022 for the label test;
the sign test's optimality for paired binary outcomes: Lehmann & Romano,
*Testing Statistical Hypotheses*, §6.8).

Sampling is decided by a hash of the request id, independent of the arm, so
both arms are sampled at the same rate whatever the split; what the analysis
compares are rates per scored answer, so a dropped sample (queue full) never
biases a comparison — it only costs power, and drops are reported per arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from airlock.core.analysis import AnalysisSettings, CustomMetric
from airlock.core.evalsuite import Check
from airlock.core.refs import parse_ref
from airlock.errors import InvalidInput

QUALITY_PREFIX = "quality."
JUDGE_METRIC = "judge.score"
PAIRWISE_METRIC = "pairwise.judge"
_SAMPLE_SPACE = 1 << 32


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OnlineScorer(_Frozen):
    """One check run on sampled live answers; harm = its pass rate falls."""

    check: Check
    tolerance: float = Field(default=0.0, ge=0.0, le=100.0)
    """Relative: ``0.5`` lets the candidate fail up to 1.5× as often as stable."""
    weight: float = Field(default=1.0, gt=0.0, le=100.0)
    required: bool = False


class JudgeSpec(_Frozen):
    """An LLM judge: a pinned release answering a pinned judge prompt."""

    release: str
    prompt: str | None = None
    """The judge prompt: an exact release ref of a prompt template (None: the built-in one)."""
    mode: Literal["pointwise", "pairwise"] = "pointwise"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Pointwise: a judged score at or above this passes."""
    tolerance: float = Field(default=0.0, ge=0.0, le=100.0)
    weight: float = Field(default=1.0, gt=0.0, le=100.0)
    timeout_s: float = Field(default=10.0, gt=0.0, le=300.0)
    max_tokens: int = Field(default=16, ge=1, le=1024)
    min_agreement: float = Field(default=0.0, ge=0.0, le=1.0)
    """Lower 95 % bound of the judge's agreement with human labels needed to gate."""
    min_labels: int = Field(default=30, ge=1)

    @field_validator("release", "prompt")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            kind = parse_ref(value).kind
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc
        if kind != "version":
            raise ValueError(
                f"{value!r} is not pinned: a judge names an exact version (name@1.2.3), "
                "never an alias, so changing the judge cannot fake a regression"
            )
        return value


class QualitySettings(_Frozen):
    sample: float = Field(default=0.1, ge=0.0, le=1.0)
    scorers: dict[str, OnlineScorer] = Field(default_factory=dict)
    judge: JudgeSpec | None = None

    @field_validator("scorers")
    @classmethod
    def _names(cls, value: dict[str, OnlineScorer]) -> dict[str, OnlineScorer]:
        for name in value:
            if not name or not all(c.isalnum() or c in "_-" for c in name) or len(name) > 64:
                raise ValueError(
                    f"scorer name {name!r}: use letters, digits, '_' or '-' (at most 64)"
                )
        return value

    @model_validator(mode="after")
    def _something_to_do(self) -> QualitySettings:
        if self.sample > 0 and not self.scorers and self.judge is None:
            raise ValueError("quality: name at least one scorer or a judge (or set sample: 0)")
        return self

    @property
    def enabled(self) -> bool:
        return self.sample > 0 and (bool(self.scorers) or self.judge is not None)


@dataclass(frozen=True, slots=True)
class ServiceQuality:
    """A service's default quality settings: what a rollout on it scores when its spec has
    no ``quality`` section of its own (a spec's section, even ``sample: 0``, wins)."""

    service: str
    settings: QualitySettings
    updated_at: datetime
    updated_by: str


def parse_quality(data: object, *, where: str = "quality") -> QualitySettings:
    """``data`` (a mapping, as YAML or JSON gives it) as settings, or ``InvalidInput`` naming
    the field that is wrong (``quality.scorers.x.check: ...``)."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{where} must be a mapping, got {type(data).__name__}",
            hint="e.g. {sample: 0.1, scorers: {no_refusal: {check: {refusal: false}}}}",
        )
    try:
        return QualitySettings.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in (where, *err["loc"]))
            problems.append(f"{loc}: {err['msg']}")
        raise InvalidInput(
            "; ".join(problems), hint="see docs/quality.md for the quality settings"
        ) from None


def parse_quality_text(text: str) -> QualitySettings:
    """Quality settings from YAML or JSON text: the settings themselves, or a document with
    a ``quality:`` section (a rollout spec's, say); ``InvalidInput`` names what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInput(f"quality settings are not valid YAML or JSON{where}") from exc
    if isinstance(data, Mapping) and "quality" in data:
        data = data["quality"]
    return parse_quality(data)


def scorer_metric(name: str) -> str:
    return QUALITY_PREFIX + name


def analysis_metrics(quality: QualitySettings | None) -> dict[str, CustomMetric]:
    """The custom metrics the analysis judges for ``quality`` (empty when it is off)."""
    if quality is None or not quality.enabled:
        return {}
    out = {
        scorer_metric(name): CustomMetric(
            higher_is_better=True,
            tolerance=s.tolerance,
            weight=s.weight,
            required=s.required,
        )
        for name, s in sorted(quality.scorers.items())
    }
    judge = quality.judge
    if judge is not None:
        if judge.mode == "pointwise":
            out[JUDGE_METRIC] = CustomMetric(
                higher_is_better=True, tolerance=judge.tolerance, weight=judge.weight
            )
        else:
            out[PAIRWISE_METRIC] = CustomMetric(
                higher_is_better=False, tolerance=judge.tolerance, weight=judge.weight
            )
    return out


def merged_custom(
    declared: Mapping[str, CustomMetric], quality: QualitySettings | None
) -> dict[str, CustomMetric]:
    """The spec's own custom metrics plus the quality ones; a name may not be declared twice."""
    extra = analysis_metrics(quality)
    clash = sorted(set(declared) & set(extra))
    if clash:
        raise ValueError(
            f"analysis.metrics.custom names {', '.join(clash)}, which the quality section "
            "defines too; rename or drop one"
        )
    return {**declared, **extra}


def not_gating(settings: AnalysisSettings, judge: JudgeSpec, why: str) -> AnalysisSettings:
    """``settings`` with the judge's metric reported but unable to roll back."""
    name = JUDGE_METRIC if judge.mode == "pointwise" else PAIRWISE_METRIC
    custom = dict(settings.metrics.custom)
    if name not in custom:
        return settings
    custom[name] = custom[name].model_copy(update={"gating": False, "note": why})
    metrics = settings.metrics.model_copy(update={"custom": custom})
    return settings.model_copy(update={"metrics": metrics})


def sampled(request_id: str, share: float) -> bool:
    """Whether the answer to ``request_id`` is scored: a hash, independent of the arm."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=4, person=b"airlock-q").digest()
    return int.from_bytes(digest, "big") < share * _SAMPLE_SPACE


Pair = tuple[tuple[float, float], tuple[float, float]]


def pair_counts(outcome: Literal["win", "tie", "loss"]) -> Pair:
    """``((candidate successes, trials), (stable successes, trials))`` of one judged pair.

    ``outcome`` is the candidate's: a loss is a "bad" event on the candidate's side, a
    win a "bad" event on stable's, a tie neither (both sides count the pair).
    """
    return (1.0 if outcome == "loss" else 0.0, 1.0), (1.0 if outcome == "win" else 0.0, 1.0)


__all__ = [
    "JUDGE_METRIC",
    "PAIRWISE_METRIC",
    "QUALITY_PREFIX",
    "JudgeSpec",
    "OnlineScorer",
    "QualitySettings",
    "ServiceQuality",
    "analysis_metrics",
    "merged_custom",
    "not_gating",
    "pair_counts",
    "parse_quality",
    "parse_quality_text",
    "sampled",
    "scorer_metric",
]
