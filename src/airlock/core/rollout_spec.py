"""Rollout specs: how a candidate should reach users, as users write it (YAML or JSON).

::

    strategy: canary                  # canary | linear | bluegreen | ab | shadow
    steps:
      - {weight_pct: 5, bake_seconds: 300}
      - {weight_pct: 25, bake_seconds: 600, pause: true}   # wait for approval first
      - {weight_pct: 100, bake_seconds: 900}
    analysis:                         # all optional, see AnalysisSettings
      alpha: 0.01
      min_requests: 200
      on_insufficient_data: pause
      metrics: {latency: {tolerance: 0.2}}
    quality:                          # optional: online scorers, an LLM judge
      sample: 0.1
      scorers: {no_refusal: {check: {refusal: false}, tolerance: 0.5}}

Each strategy expands to a :meth:`schedule` of :class:`RolloutStep` values,
which is all the state machine in :mod:`airlock.core.rollout` looks at:

=========  =============================================================  ===========
strategy   schedule                                                       ends
=========  =============================================================  ===========
canary     the steps as written                                           promoted
linear     ``step_pct``, 2×, 3× … up to 100 %, each baked ``bake_seconds`` promoted
bluegreen  mirror to the candidate (``shadow_seconds``), then 100 % at once promoted
ab         ``split_pct`` for ``duration_seconds``; never moves stable     completed
shadow     mirror only for ``duration_seconds``; never user traffic       completed
=========  =============================================================  ===========

A step at 0 % mirrors requests to the candidate and a step at 100 % mirrors
them to the stable release, so the analysis always has both sides of the
comparison on the same time window.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from airlock.core.analysis import AnalysisSettings, MetricSettings
from airlock.core.quality import QualitySettings, merged_custom
from airlock.errors import InvalidInput

Mirror = Literal["candidate", "stable"] | None
FULL = 10_000  # basis points


@dataclass(frozen=True, slots=True)
class RolloutStep:
    """One step of a schedule: the candidate's weight and how long it bakes."""

    weight_bp: int
    bake_seconds: float
    pause: bool = False  # wait for a manual approval before this step starts

    @property
    def mirror(self) -> Mirror:
        """Which release gets a copy of live requests so both sides have data."""
        if self.weight_bp == 0:
            return "candidate"
        if self.weight_bp == FULL:
            return "stable"
        return None


def _bp(pct: float) -> int:
    return round(pct * 100)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Spec(_Frozen):
    promotes: ClassVar[bool] = True
    analysis: AnalysisSettings = AnalysisSettings()
    quality: QualitySettings | None = None
    """Online scorers and an LLM judge on sampled live answers (see :mod:`airlock.core.quality`)."""

    @property
    def judged_analysis(self) -> AnalysisSettings:
        """``analysis`` with the quality section's metrics added: what the controller judges."""
        if self.quality is None or not self.quality.enabled:
            return self.analysis
        custom = merged_custom(self.analysis.metrics.custom, self.quality)
        metrics = MetricSettings.model_validate(
            {**self.analysis.metrics.model_dump(), "custom": custom}
        )
        return self.analysis.model_copy(update={"metrics": metrics})

    @model_validator(mode="after")
    def _quality_names_are_free(self) -> _Spec:
        if self.quality is not None:
            merged_custom(self.analysis.metrics.custom, self.quality)
        return self

    def schedule(self) -> tuple[RolloutStep, ...]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _bakes_fit_the_deadline(self) -> _Spec:
        limit = self.analysis.max_step_seconds
        if self.promotes:
            for index, step in enumerate(self.schedule()):
                if step.bake_seconds > limit:
                    raise ValueError(
                        f"step {index + 1} bakes {step.bake_seconds:g}s, longer than "
                        f"analysis.max_step_seconds ({limit:g}s); raise max_step_seconds"
                    )
        return self


class CanaryStep(_Frozen):
    weight_pct: float = Field(gt=0, le=100)
    bake_seconds: float = Field(default=300.0, ge=0)
    pause: bool = False

    @model_validator(mode="after")
    def _at_least_one_bp(self) -> CanaryStep:
        if _bp(self.weight_pct) < 1:
            raise ValueError("weight_pct must be at least 0.01 (one basis point)")
        return self


class CanarySpec(_Spec):
    strategy: Literal["canary"] = "canary"
    steps: tuple[CanaryStep, ...] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _monotone(cls, steps: tuple[CanaryStep, ...]) -> tuple[CanaryStep, ...]:
        weights = [s.weight_pct for s in steps]
        if any(b < a for a, b in itertools.pairwise(weights)):
            raise ValueError(
                f"canary weights must never decrease from one step to the next, got {weights}"
            )
        return steps

    def schedule(self) -> tuple[RolloutStep, ...]:
        return tuple(RolloutStep(_bp(s.weight_pct), s.bake_seconds, s.pause) for s in self.steps)


class LinearSpec(_Spec):
    strategy: Literal["linear"] = "linear"
    step_pct: float = Field(ge=1, le=100)
    bake_seconds: float = Field(default=300.0, ge=0)

    def schedule(self) -> tuple[RolloutStep, ...]:
        count = math.ceil(100 / self.step_pct - 1e-9)
        return tuple(
            RolloutStep(min(_bp(self.step_pct * k), FULL), self.bake_seconds)
            for k in range(1, count + 1)
        )


class BlueGreenSpec(_Spec):
    strategy: Literal["bluegreen"] = "bluegreen"
    shadow_seconds: float = Field(default=300.0, ge=0)
    bake_seconds: float = Field(default=300.0, ge=0)

    def schedule(self) -> tuple[RolloutStep, ...]:
        switch = RolloutStep(FULL, self.bake_seconds)
        if self.shadow_seconds == 0:
            return (switch,)
        return (RolloutStep(0, self.shadow_seconds), switch)


class ABSpec(_Spec):
    promotes: ClassVar[bool] = False
    strategy: Literal["ab"] = "ab"
    split_pct: float = Field(gt=0, lt=100)
    duration_seconds: float = Field(gt=0)

    def schedule(self) -> tuple[RolloutStep, ...]:
        return (RolloutStep(max(_bp(self.split_pct), 1), self.duration_seconds),)


class ShadowSpec(_Spec):
    promotes: ClassVar[bool] = False
    strategy: Literal["shadow"] = "shadow"
    duration_seconds: float = Field(gt=0)

    def schedule(self) -> tuple[RolloutStep, ...]:
        return (RolloutStep(0, self.duration_seconds),)


RolloutSpec = CanarySpec | LinearSpec | BlueGreenSpec | ABSpec | ShadowSpec
STRATEGIES: tuple[str, ...] = ("canary", "linear", "bluegreen", "ab", "shadow")
_ADAPTER: TypeAdapter[RolloutSpec] = TypeAdapter(
    Annotated[RolloutSpec, Field(discriminator="strategy")]
)
_EXAMPLE = "e.g. {strategy: canary, steps: [{weight_pct: 5, bake_seconds: 300}, {weight_pct: 100}]}"


def parse_spec(source: str | Mapping[str, Any]) -> RolloutSpec:
    """A rollout spec from YAML or JSON text, or from an already-parsed mapping.

    Raises InvalidInput naming the offending field, e.g.
    ``steps.1.weight_pct: Input should be less than or equal to 100``.
    """
    data: Any = source
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise InvalidInput(
                f"rollout spec is not valid YAML or JSON{where}", hint=_EXAMPLE
            ) from exc
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"a rollout spec must be a mapping, got {type(data).__name__}", hint=_EXAMPLE
        )
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise _invalid(exc, data) from exc


def with_default_quality(spec: RolloutSpec, quality: QualitySettings | None) -> RolloutSpec:
    """``spec`` with a service's default ``quality`` when it has no section of its own (its
    own, even ``sample: 0``, wins). Refused, naming both, when a default scorer's metric
    clashes with a custom metric the spec declares."""
    if quality is None or spec.quality is not None:
        return spec
    try:
        return parse_spec({**spec.to_dict(), "quality": quality.model_dump(mode="json")})
    except InvalidInput as exc:
        raise InvalidInput(
            f"the service's default quality settings do not fit this spec: {exc.message}",
            hint="give the spec its own quality section, or rename its custom metric",
        ) from None


_MODELS: dict[str, type[_Spec]] = {
    "canary": CanarySpec,
    "linear": LinearSpec,
    "bluegreen": BlueGreenSpec,
    "ab": ABSpec,
    "shadow": ShadowSpec,
}


_SHOWN = 20  # problems named in one refusal (the rest counted): a message, not a dump


def _invalid(exc: ValidationError, data: Mapping[str, Any]) -> InvalidInput:
    errors = []
    for error in exc.errors()[:_SHOWN]:
        loc = tuple(str(part) for part in error["loc"])
        if loc and loc[0] in STRATEGIES:
            loc = loc[1:]  # the discriminator tag pydantic prefixes
        errors.append((loc, str(error["type"]), str(error["msg"]).removeprefix("Value error, ")))
    missing = {loc: kind for loc, kind, _ in errors if kind == "missing"}
    problems = []
    for loc, kind, message in errors:
        nested = any(other[: len(loc)] == loc and len(other) > len(loc) for other, _, _ in errors)
        if kind == "too_short" and nested:
            continue  # "at least 1 item" only because every item was invalid
        if kind == "union_tag_not_found":
            message = f"missing; choose one of {', '.join(STRATEGIES)}"
            loc = ("strategy",)
        elif kind == "union_tag_invalid":
            message = f"{data.get('strategy')!r} is not one of {', '.join(STRATEGIES)}"
            loc = ("strategy",)
        elif kind == "extra_forbidden":
            siblings = [m[-1] for m in missing if m[:-1] == loc[:-1]]
            close = difflib.get_close_matches(loc[-1], siblings, n=1)
            message = f"unknown field; did you mean {close[0]!r}?" if close else "unknown field"
        problems.append(f"{'.'.join(loc) or 'spec'}: {message}")
    model = _MODELS.get(str(data.get("strategy")))
    hint = _EXAMPLE
    if model is not None:
        fields = ", ".join(name for name in model.model_fields if name != "strategy")
        hint = f"strategy {data.get('strategy')} takes: {fields}"
    more = exc.error_count() - _SHOWN
    if more > 0:
        problems.append(f"and {more} more")
    return InvalidInput("invalid rollout spec: " + "; ".join(problems), hint=hint)


__all__ = [
    "STRATEGIES",
    "ABSpec",
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStep",
    "LinearSpec",
    "RolloutSpec",
    "RolloutStep",
    "ShadowSpec",
    "parse_spec",
    "with_default_quality",
]
