"""Evaluation suites: cases and checks as data, and the pure function that scores an answer.

A suite is YAML (or JSONL: one case per line, the suite named after the file)::

    name: quality
    description: Answers about the new lamp
    params: {temperature: 0.7, max_tokens: 48, seed: 0}   # unset: the release's defaults
    checks:                                               # applied to every case
      - {max_chars: 600}
      - {refusal: false}
    cases:
      - id: charge
        prompt: How do I charge the lamp?                 # or messages: [{role, content}]
        reference: USB-C
        checks:
          - {contains_any: [USB-C, wirelessly]}
          - {matches_reference: contains}
          - {max_latency_ms: 2000}
          - {scorer: keyword_overlap, threshold: 0.5, args: {keywords: [USB-C, cable], min: 1}}

Check kinds (one per mapping; ``case_sensitive`` and ``name`` are options):

=====================  ===================================================================
``exact``              the answer, stripped, equals the text
``contains``           every given text occurs (case-insensitive unless told otherwise)
``contains_any``       at least one occurs
``not_contains``       none occurs
``regex``/``not_regex`` a regular expression is found / is not found
``matches_reference``  ``exact`` or ``contains`` against the case's ``reference``
``json``               the answer parses as JSON (``true``) and has the ``required_keys``
``refusal``            ``true``: the release refused (guardrail block or refusal wording);
                       ``false``: it did not
``safety``             ``clean``: no guardrail flag; ``blocked``: the request or answer was
                       blocked; ``{max_flags: N, rules: [...]}``
``min_chars`` ...      ``min_chars``, ``max_chars``, ``max_words``: length limits
``max_latency_ms``     the release answered within this time
``scorer``             a registered scorer (a built-in, :mod:`airlock.core.scorers`, or an
                       entry point of the group ``airlock.scorers`` an admin installed;
                       never an arbitrary ``module:function``) returning a score in
                       [0, 1]; passes at ``threshold`` (default 0.5)
=====================  ===================================================================

A case passes when all its checks pass; its score is the mean of its checks'
scores (1 or 0, or the custom score). Both feed :mod:`airlock.core.evalstats`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airlock.core.digest import canonical_json, digest_bytes
from airlock.core.documents import validation_message
from airlock.core.names import check_name
from airlock.core.scorers import Scorer, ScorerError, ScorerInput
from airlock.errors import InvalidInput

CHECK_KINDS = (
    "exact",
    "contains",
    "contains_any",
    "not_contains",
    "regex",
    "not_regex",
    "matches_reference",
    "json",
    "refusal",
    "safety",
    "min_chars",
    "max_chars",
    "max_words",
    "max_latency_ms",
    "scorer",
)
REFUSAL_PATTERNS = (
    r"\bI(?: a|')m (?:sorry|afraid)\b",
    r"\bI (?:can(?:'|no)t|cannot|won't|will not|am unable to|'m unable to) (?:help|assist|answer|provide|do|comply|share|discuss)",
    r"\bI can only help with\b",
    r"\b(?:not able|unable) to (?:help|assist) with\b",
    r"\bas an AI\b",
    r"\bI must decline\b",
)
_REFUSAL_RE = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
MAX_SAVED_OUTPUT = 2000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


TextOrList = str | tuple[str, ...]


class SafetyExpectation(_Frozen):
    max_flags: int = Field(default=0, ge=0)
    rules: tuple[str, ...] = ()  # only these rules count (default: every rule)


class Check(_Frozen):
    """One check; exactly one kind field is set."""

    name: str | None = None
    case_sensitive: bool = False
    exact: str | None = None
    contains: TextOrList | None = None
    contains_any: tuple[str, ...] | None = None
    not_contains: TextOrList | None = None
    regex: str | None = None
    not_regex: str | None = None
    matches_reference: Literal["exact", "contains"] | None = None
    json_: bool | None = Field(default=None, alias="json")
    required_keys: tuple[str, ...] = ()
    refusal: bool | None = None
    safety: Literal["clean", "blocked"] | SafetyExpectation | None = None
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    scorer: str | None = None
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    args: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if self._value(k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(
                f"a check names exactly one of {', '.join(CHECK_KINDS)} (found {found})"
            )
        for pattern in (self.regex, self.not_regex):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return self

    def _value(self, kind: str) -> Any:
        return self.json_ if kind == "json" else getattr(self, kind)

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if self._value(k) is not None)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        value = self._value(self.kind)
        if isinstance(value, SafetyExpectation):
            value = f"max_flags={value.max_flags}"
        elif isinstance(value, tuple):
            value = "|".join(value)
        text = f"{self.kind}={value}"
        return text if len(text) <= 48 else text[:45] + "..."


class Params(_Frozen):
    """Decoding overrides; None keeps the release's own default."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: tuple[str, ...] | None = None

    def merged(self, other: Params) -> Params:
        return Params.model_validate(
            {**self.model_dump(exclude_none=True), **other.model_dump(exclude_none=True)}
        )

    def as_request(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True)
        if "stop" in data:
            data["stop"] = list(data["stop"])
        return data


class Message(_Frozen):
    role: Literal["system", "user", "assistant"]
    content: str


class Case(_Frozen):
    id: str
    prompt: str | None = None
    messages: tuple[Message, ...] = ()
    reference: str | None = None
    checks: tuple[Check, ...] = ()
    tags: tuple[str, ...] = ()
    params: Params = Params()

    @model_validator(mode="after")
    def _one_input(self) -> Case:
        if (self.prompt is None) == (not self.messages):
            raise ValueError(f"case {self.id!r}: give exactly one of prompt or messages")
        if any(c.matches_reference for c in self.checks) and self.reference is None:
            raise ValueError(f"case {self.id!r}: matches_reference needs a reference")
        return self

    def chat(self) -> tuple[dict[str, str], ...]:
        if self.messages:
            return tuple({"role": m.role, "content": m.content} for m in self.messages)
        assert self.prompt is not None
        return ({"role": "user", "content": self.prompt},)


class Suite(_Frozen):
    name: str
    description: str = ""
    params: Params = Params()
    checks: tuple[Check, ...] = ()
    cases: tuple[Case, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v, "suite name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc

    @model_validator(mode="after")
    def _cases(self) -> Suite:
        if not self.cases:
            raise ValueError("a suite needs at least one case")
        ids = [c.id for c in self.cases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"case ids must be unique; repeated: {', '.join(dupes)}")
        for c in self.cases:
            if not c.checks and not self.checks:
                raise ValueError(f"case {c.id!r} has no checks (and the suite has none)")
        return self

    def digest(self) -> str:
        return digest_bytes(canonical_json(self.model_dump(mode="json", by_alias=True)))

    def scorers(self) -> tuple[str, ...]:
        names = [ch.scorer for ch in self.checks if ch.scorer]
        names += [ch.scorer for c in self.cases for ch in c.checks if ch.scorer]
        return tuple(dict.fromkeys(names))


def parse_suite(text: str, *, default_name: str, jsonl: bool = False) -> Suite:
    """A suite from YAML (a mapping with ``cases``) or JSONL (one case per line)."""
    try:
        if jsonl:
            cases = [json.loads(line) for line in text.splitlines() if line.strip()]
            data: Any = {"name": default_name, "cases": cases}
        else:
            data = yaml.safe_load(text)
            if isinstance(data, list):
                data = {"cases": data}
            if not isinstance(data, dict):
                raise InvalidInput("a suite must be a mapping with 'cases' (or a list of cases)")
            data.setdefault("name", default_name)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the suite is not valid {'JSONL' if jsonl else 'YAML'}: {exc}") from exc
    if isinstance(data.get("cases"), list):
        data["cases"] = [
            {"id": f"case-{i + 1}", **c} if isinstance(c, dict) and "id" not in c else c
            for i, c in enumerate(data["cases"])
        ]
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid suite {data.get('name', default_name)!r}: {validation_message(exc, 'suite')}",
            hint="see `airlock eval --help` for the suite format",
        ) from exc


# -- scoring ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """What one release did with one case, as a user would have seen it."""

    text: str
    latency_ms: float
    blocked: Literal["input", "output"] | None = None
    flags: tuple[str, ...] = ()  # guardrail rules that matched, input and output
    refusal_text: str | None = None  # the release's safety-policy refusal, if it has one
    completion_tokens: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    passed: bool
    score: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CaseResult:
    id: str
    passed: bool
    score: float
    checks: tuple[CheckResult, ...]
    output: str
    latency_ms: float
    error: str | None = None
    flags: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "passed": self.passed,
            "score": self.score,
            "checks": [
                {"check": c.check, "passed": c.passed, "score": c.score, "detail": c.detail}
                for c in self.checks
            ],
            "output": self.output[:MAX_SAVED_OUTPUT],
            "latency_ms": self.latency_ms,
            "error": self.error,
            "flags": list(self.flags),
        }


def looks_like_refusal(text: str, refusal_text: str | None = None) -> bool:
    stripped = text.strip()
    if refusal_text and stripped == refusal_text.strip():
        return True
    return bool(_REFUSAL_RE.search(stripped))


def _texts(value: TextOrList) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _has(text: str, needle: str, case_sensitive: bool) -> bool:
    return needle in text if case_sensitive else needle.casefold() in text.casefold()


def _boolean(check: Check, ok: bool, detail: str) -> CheckResult:
    return CheckResult(check.label, ok, 1.0 if ok else 0.0, "" if ok else detail)


def run_check(
    check: Check, case: Case, obs: Observation, scorers: Mapping[str, Scorer]
) -> CheckResult:
    """Apply one check to one observation (pure; custom scorers are passed in)."""
    text, cs = obs.text, check.case_sensitive
    kind = check.kind
    if obs.error is not None and kind not in ("refusal", "safety"):
        return CheckResult(check.label, False, 0.0, f"no answer: {obs.error}")
    if kind == "exact":
        assert check.exact is not None
        got, want = text.strip(), check.exact.strip()
        ok = got == want if cs else got.casefold() == want.casefold()
        return _boolean(check, ok, f"answer is {got[:60]!r}")
    if kind in ("contains", "contains_any", "not_contains"):
        needles = _texts(check._value(kind))
        present = [n for n in needles if _has(text, n, cs)]
        if kind == "contains":
            missing = [n for n in needles if n not in present]
            return _boolean(check, not missing, f"missing {', '.join(map(repr, missing))}")
        if kind == "contains_any":
            return _boolean(check, bool(present), "none of them occurs")
        return _boolean(check, not present, f"contains {', '.join(map(repr, present))}")
    if kind in ("regex", "not_regex"):
        pattern = check._value(kind)
        found = re.search(pattern, text, 0 if cs else re.IGNORECASE)
        if kind == "regex":
            return _boolean(check, found is not None, "no match")
        assert found is None or isinstance(found.group(0), str)
        return _boolean(check, found is None, f"matched {found.group(0)!r}" if found else "")
    if kind == "matches_reference":
        assert case.reference is not None
        if check.matches_reference == "exact":
            a, b = text.strip(), case.reference.strip()
            ok = a == b if cs else a.casefold() == b.casefold()
        else:
            ok = _has(text, case.reference, cs)
        return _boolean(check, ok, f"reference {case.reference[:60]!r} not matched")
    if kind == "json":
        return _json_check(check, text)
    if kind == "refusal":
        refused = obs.blocked is not None or looks_like_refusal(text, obs.refusal_text)
        expected = bool(check.refusal)
        how = f"blocked by the {obs.blocked} guardrail" if obs.blocked else "answered"
        return _boolean(
            check, refused == expected, f"{'did not refuse' if expected else 'refused'} ({how})"
        )
    if kind == "safety":
        return _safety_check(check, obs)
    if kind in ("min_chars", "max_chars", "max_words"):
        limit = check._value(kind)
        size = len(text.split()) if kind == "max_words" else len(text)
        ok = size >= limit if kind == "min_chars" else size <= limit
        unit = "words" if kind == "max_words" else "characters"
        return _boolean(check, ok, f"{size} {unit}")
    if kind == "max_latency_ms":
        assert check.max_latency_ms is not None
        ok = obs.latency_ms <= check.max_latency_ms
        return _boolean(check, ok, f"took {obs.latency_ms:.0f} ms")
    return _custom(check, case, obs, scorers)


def _json_check(check: Check, text: str) -> CheckResult:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        ok = check.json_ is False
        return _boolean(check, ok, f"not JSON ({exc.msg} at {exc.pos})")
    if check.json_ is False:
        return _boolean(check, False, "is JSON")
    if check.required_keys:
        if not isinstance(value, dict):
            return _boolean(check, False, "JSON, but not an object")
        missing = [k for k in check.required_keys if k not in value]
        return _boolean(check, not missing, f"missing keys {', '.join(missing)}")
    return _boolean(check, True, "")


def _safety_check(check: Check, obs: Observation) -> CheckResult:
    expect = check.safety
    if expect == "blocked":
        return _boolean(check, obs.blocked is not None, "not blocked by a guardrail")
    rules = expect.rules if isinstance(expect, SafetyExpectation) else ()
    limit = expect.max_flags if isinstance(expect, SafetyExpectation) else 0
    counted = [f for f in obs.flags if not rules or f in rules]
    if obs.blocked is not None and expect == "clean":
        return _boolean(check, False, f"blocked by the {obs.blocked} guardrail")
    return _boolean(check, len(counted) <= limit, f"{len(counted)} flag(s): {', '.join(counted)}")


def _custom(
    check: Check, case: Case, obs: Observation, scorers: Mapping[str, Scorer]
) -> CheckResult:
    assert check.scorer is not None
    scorer = scorers.get(check.scorer)
    if scorer is None:
        return CheckResult(check.label, False, 0.0, f"scorer {check.scorer!r} is not loaded")
    prompt = case.prompt if case.prompt is not None else case.chat()[-1]["content"]
    try:
        raw = scorer(ScorerInput(obs.text, prompt, case.reference, check.args))
        score = float(raw)
    except ScorerError as exc:  # timed out, crashed, failed in its process: said already
        return CheckResult(check.label, False, 0.0, f"scorer failed: {exc}")
    except Exception as exc:  # a plug-in's failure is a failed check, not a failed run
        return CheckResult(check.label, False, 0.0, f"scorer failed: {type(exc).__name__}: {exc}")
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        return CheckResult(check.label, False, 0.0, f"scorer returned {raw!r}, not in [0, 1]")
    ok = score >= check.threshold
    return CheckResult(
        check.label, ok, score, "" if ok else f"score {score:.3f} < {check.threshold:g}"
    )


def score_case(
    suite: Suite, case: Case, obs: Observation, scorers: Mapping[str, Scorer] | None = None
) -> CaseResult:
    results = tuple(run_check(c, case, obs, scorers or {}) for c in (*suite.checks, *case.checks))
    score = math.fsum(r.score for r in results) / len(results)
    return CaseResult(
        id=case.id,
        passed=all(r.passed for r in results),
        score=score,
        checks=results,
        output=obs.text,
        latency_ms=obs.latency_ms,
        error=obs.error,
        flags=obs.flags,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class PairedOutcomes:
    """Per-case outcomes of a stored run, in case order (baseline ones when it had one)."""

    passed: tuple[bool, ...]
    scores: tuple[float, ...]
    baseline_passed: tuple[bool, ...] | None
    baseline_scores: tuple[float, ...] | None


def outcomes_from_record(record: Mapping[str, Any]) -> PairedOutcomes:
    """Read the outcomes out of a stored run record (the ``result`` JSON of an eval run)."""
    cases = record.get("cases") or []
    passed = tuple(bool(c["passed"]) for c in cases)
    scores = tuple(float(c["score"]) for c in cases)
    if cases and all(c.get("baseline") for c in cases):
        return PairedOutcomes(
            passed,
            scores,
            tuple(bool(c["baseline"]["passed"]) for c in cases),
            tuple(float(c["baseline"]["score"]) for c in cases),
        )
    return PairedOutcomes(passed, scores, None, None)
