"""Offline evaluation: run a suite against a release (and its baseline), score, compare, store.

``Evals(ws).run("chat@1.1.0", suite, baseline="chat@1.0.0", actor=...)``:

1. loads both releases through the runtime layer (:class:`~airlock.runtime.loader.
   ReleaseLoader`: every byte verified, the release's own runtime, prompt
   template, decoding defaults and safety policy);
2. asks each case of both, the way the gateway would: input guardrails, the
   release's template and decoding defaults under the suite's overrides, the
   runtime under the release's timeout, output guardrails. Sampling is seeded per
   case (the suite's seed, else a hash of the case id), identically for both
   releases, so a run is reproducible and the two answers are a fair pair;
3. scores every answer (:mod:`airlock.core.evalsuite`); custom scorers must be
   registered (built-ins, or entry points of the ``airlock.scorers`` group) and run
   in a separate process, each call under a time limit
   (:mod:`airlock.services.scoring`): a failing or hanging scorer fails its case;
4. compares the pairs (:mod:`airlock.core.evalstats`: McNemar exact test and
   Newcombe interval on pass/fail, paired bootstrap and sign-flip test on
   scores) and stores the run, with every case, in the catalog together with an
   ``eval.run`` audit event. Policy gates read the stored runs.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any, Literal

from airlock import audit
from airlock.catalog import governance as sql
from airlock.core.digest import Digest
from airlock.core.evalstats import Comparison, Interval, compare_pass_rates, compare_scores
from airlock.core.evalsuite import (
    Case,
    CaseResult,
    CheckResult,
    Observation,
    Params,
    Suite,
    parse_suite,
    percentile,
    score_case,
)
from airlock.core.guardrails import SafetyPolicy, apply
from airlock.core.paging import Page, cursor_int, decode_cursor, page_limit, page_of
from airlock.core.prompting import DecodingDefaults, PromptTemplate, merge_decoding
from airlock.core.records import EvalRunSummary, Release
from airlock.core.roles import Action
from airlock.core.scorers import Scorer
from airlock.errors import AirlockError, InvalidInput, NotFound
from airlock.runtime.base import GenerationRequest
from airlock.runtime.loader import LoadedRelease, ReleaseLoader
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.scoring import (
    DEFAULT_TIMEOUT_S,
    ScorerProcess,
    check_scorers,
)
from airlock.services.workspace import Workspace

RECORD_FORMAT = 1
# What the gateway assumes for a release without its own template or decoding defaults.
_TEXT_RUNTIMES = frozenset({"builtin", "transformers"})
_DEFAULT_TEMPLATE = PromptTemplate()
_DEFAULT_DECODING = DecodingDefaults()
_OPEN_DECODING = DecodingDefaults(max_tokens_cap=1 << 30)

ObserveFn = Callable[[str, Suite], Sequence[Observation]]
"""``(release ref, suite) -> one observation per case``; the default uses the runtimes."""


@dataclass(frozen=True, slots=True)
class EvalRun:
    """One stored evaluation run (what ``airlock eval`` prints and ``show`` lists)."""

    id: int
    ref: str
    digest: str
    suite: str
    suite_digest: str
    baseline: str | None
    cases: tuple[CaseResult, ...]
    baseline_cases: tuple[CaseResult, ...] | None
    pass_rate: Comparison | None  # None without a baseline
    score: Comparison | None
    latency_ms: Mapping[str, float]
    confidence: float
    actor: str
    started_at: datetime
    finished_at: datetime

    @property
    def n(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def candidate_pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    @property
    def mean_score(self) -> float:
        return sum(c.score for c in self.cases) / self.n if self.n else 0.0

    def significant(self, alpha: float = 0.05) -> bool:
        return any(c is not None and c.significant(alpha) for c in (self.pass_rate, self.score))


def stored_run(summary: EvalRunSummary) -> EvalRun:
    """A stored run as ``airlock eval`` printed it, rebuilt from its record (every case and
    comparison is in it; a case's ``output`` as stored, clipped to the record's limit)."""
    record = summary.document()

    def case(c: Mapping[str, Any]) -> CaseResult:
        return CaseResult(
            id=c["id"],
            passed=bool(c["passed"]),
            score=float(c["score"]),
            checks=tuple(
                CheckResult(x["check"], bool(x["passed"]), float(x["score"]), x["detail"])
                for x in c["checks"]
            ),
            output=c["output"],
            latency_ms=float(c["latency_ms"]),
            error=c.get("error"),
            flags=tuple(c.get("flags") or ()),
        )

    def comparison(c: Mapping[str, Any] | None) -> Comparison | None:
        if c is None:
            return None
        return Comparison(
            method=c["method"],
            n=int(c["n"]),
            candidate=float(c["candidate"]),
            baseline=float(c["baseline"]),
            ci=Interval(float(c["ci_low"]), float(c["ci_high"]), float(c["confidence"])),
            p_value=float(c["p_value"]),
            improved=int(c["improved"]),
            regressed=int(c["regressed"]),
        )

    rows = record["cases"]
    paired = bool(rows) and all(r.get("baseline") for r in rows)
    return EvalRun(
        id=summary.id,
        ref=summary.release_ref,
        digest=record["digest"],
        suite=summary.suite,
        suite_digest=summary.suite_digest,
        baseline=record.get("baseline"),
        cases=tuple(case(r) for r in rows),
        baseline_cases=tuple(case(r["baseline"]) for r in rows) if paired else None,
        pass_rate=comparison(record["comparison"]["pass_rate"]),
        score=comparison(record["comparison"]["score"]),
        latency_ms=dict(record["latency_ms"]),
        confidence=float(record["confidence"]),
        actor=summary.actor,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
    )


def load_suite(path: Path) -> Suite:
    """A suite file: ``.jsonl`` (one case per line) or YAML/JSON (``.yaml``, ``.yml``, ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(
            f"no suite file at {path}", hint="give the path of a YAML or JSONL suite"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the suite {path}: {exc}") from exc
    stem = path.stem.lower().replace(" ", "-")
    return parse_suite(text, default_name=stem, jsonl=path.suffix.lower() == ".jsonl")


def case_seed(suite: Suite, case: Case) -> int:
    params = suite.params.merged(case.params)
    if params.seed is not None:
        return params.seed
    return zlib.crc32(f"{suite.name}\0{case.id}".encode()) & 0x7FFFFFFF


class Evals:
    def __init__(
        self,
        workspace: Workspace,
        *,
        observe: ObserveFn | None = None,
        scorer_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.ws = workspace
        self.scorer_timeout_s = scorer_timeout_s
        self.db = workspace.db
        self.registry = Registry(workspace)
        self._observe = observe or self._observe_with_runtimes

    # -- running -----------------------------------------------------------------------
    def run(
        self,
        ref: str,
        suite: Suite | Path,
        *,
        actor: Actor,
        baseline: str | None = None,
        confidence: float = 0.95,
    ) -> EvalRun:
        if isinstance(suite, Path):
            suite = load_suite(suite)
        if not 0.5 < confidence < 1.0:
            raise InvalidInput(f"--confidence must be between 0.5 and 1, got {confidence}")
        release = self.registry.resolve(ref)
        base = self.registry.resolve(baseline) if baseline else None
        if base is not None and base.id == release.id:
            raise InvalidInput(
                f"{release.ref} cannot be its own baseline", hint="compare with an earlier release"
            )
        authorize(self.db, actor, Action.EVAL_RECORD, release.ref)
        check_scorers(suite.scorers())  # before any work: only registered scorers
        started = datetime.now(UTC)
        with ScorerProcess(timeout_s=self.scorer_timeout_s) as process:
            scorers = process.scorers(suite.scorers())
            cases = self._score(suite, self._observe(release.ref, suite), scorers)
            base_cases = (
                self._score(suite, self._observe(base.ref, suite), scorers) if base else None
            )
        finished = datetime.now(UTC)
        pass_cmp = score_cmp = None
        if base_cases is not None:
            pass_cmp = compare_pass_rates(
                [c.passed for c in cases], [c.passed for c in base_cases], confidence
            )
            score_cmp = compare_scores(
                [c.score for c in cases], [c.score for c in base_cases], confidence
            )
        latency = _latency(cases, base_cases)
        record = _record(
            suite, release, base, cases, base_cases, pass_cmp, score_cmp, latency, confidence
        )
        run_id = self._store(
            release, base, suite, record, cases, pass_cmp, actor, started, finished
        )
        return EvalRun(
            run_id,
            release.ref,
            release.digest,
            suite.name,
            suite.digest(),
            base.ref if base else None,
            cases,
            base_cases,
            pass_cmp,
            score_cmp,
            latency,
            confidence,
            actor.name,
            started,
            finished,
        )

    @staticmethod
    def _score(
        suite: Suite, observations: Sequence[Observation], scorers: Mapping[str, Scorer]
    ) -> tuple[CaseResult, ...]:
        if len(observations) != len(suite.cases):
            raise InvalidInput(
                f"got {len(observations)} answers for {len(suite.cases)} cases"
            )  # a custom observe function broke its contract
        return tuple(
            score_case(suite, c, o, scorers) for c, o in zip(suite.cases, observations, strict=True)
        )

    def _store(
        self,
        release: Release,
        base: Release | None,
        suite: Suite,
        record: dict[str, Any],
        cases: Sequence[CaseResult],
        pass_cmp: Comparison | None,
        actor: Actor,
        started: datetime,
        finished: datetime,
    ) -> int:
        n = len(cases)
        with self.db.write() as conn:
            run_id = sql.insert_eval_run(
                conn,
                release_id=release.id,
                suite=suite.name,
                suite_digest=suite.digest(),
                baseline_release_id=base.id if base else None,
                cases=n,
                pass_rate=sum(c.passed for c in cases) / n,
                mean_score=sum(c.score for c in cases) / n,
                baseline_pass_rate=pass_cmp.baseline if pass_cmp else None,
                p_value=pass_cmp.p_value if pass_cmp else None,
                result=json.dumps(record, sort_keys=True, ensure_ascii=False),
                actor=actor.name,
                started_at=started,
                finished_at=finished,
            )
            event = audit.append(
                conn,
                actor=actor.name,
                action="eval.run",
                subject=release.ref,
                details={
                    "run": run_id,
                    "suite": suite.name,
                    "suite_digest": suite.digest(),
                    "digest": release.digest,
                    "baseline": base.ref if base else None,
                    "cases": n,
                    "pass_rate": record["summary"]["pass_rate"],
                    "comparison": record["comparison"]["pass_rate"] if pass_cmp else None,
                },
            )
            sql.set_eval_event(conn, run_id, event.seq)
        return run_id

    # -- reading -------------------------------------------------------------------------
    def runs(self, ref: str) -> list[EvalRunSummary]:
        release = self.registry.resolve(ref)
        with self.db.read() as conn:
            return sql.eval_runs_of(conn, release.id)

    def run_page(
        self, ref: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[EvalRunSummary]:
        """``runs`` a page at a time, oldest first (keyset on the run id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        release = self.registry.resolve(ref)
        with self.db.read() as conn:
            rows = sql.eval_runs_of(
                conn, release.id, after=cursor_int(after[0]) if after else None, limit=size + 1
            )
        return page_of(rows, size, lambda r: [r.id])

    def record(self, run_id: int) -> EvalRunSummary:
        """One stored run; ``.document()`` is its full record (what ``--json`` prints)."""
        with self.db.read() as conn:
            row = sql.eval_run(conn, run_id)
        if row is None:
            raise NotFound(f"no evaluation run #{run_id}", hint="`airlock show REF` lists the runs")
        return row

    # -- answering through the runtime layer ------------------------------------------------
    def _observe_with_runtimes(self, ref: str, suite: Suite) -> list[Observation]:
        def resolve(text: str) -> tuple[str, Digest]:
            row = self.registry.resolve(text)
            return row.ref, row.digest

        loader = ReleaseLoader(self.ws.store, resolve, scratch_dir=self.ws.cache_dir)
        return asyncio.run(_answer_all(loader, ref, suite))


async def _answer_all(loader: ReleaseLoader, ref: str, suite: Suite) -> list[Observation]:
    loaded = await asyncio.to_thread(loader.load, ref)
    try:
        return [await answer(loaded, suite, case) for case in suite.cases]
    finally:
        await loaded.aclose()


async def answer(loaded: LoadedRelease, suite: Suite, case: Case) -> Observation:
    """One case through one loaded release, shaped and guarded as the gateway does."""
    policy: SafetyPolicy | None = loaded.safety
    refusal = policy.refusal if policy else None
    messages = [dict(m) for m in case.chat()]
    flags: list[str] = []
    if policy is not None:
        for m in messages:
            checked = apply(policy, m["content"], direction="input")
            flags += [f.rule for f in checked.flags]
            if checked.blocked:
                return Observation(refusal or "", 0.0, "input", tuple(flags), refusal)
            m["content"] = checked.text
    params = suite.params.merged(case.params)
    try:
        request = _request(
            loaded, messages, params.model_copy(update={"seed": case_seed(suite, case)})
        )
    except InvalidInput as exc:
        return Observation("", 0.0, None, tuple(flags), refusal, error=exc.message)
    started = perf_counter()
    try:
        result = await _within(loaded.runtime.generate(request), loaded.timeout_s)
    except TimeoutError:
        return Observation(
            "", (perf_counter() - started) * 1000.0, None, tuple(flags), refusal,
            error=f"no answer within {loaded.timeout_s:g} s",
        )  # fmt: skip
    except AirlockError as exc:
        return Observation(
            "", (perf_counter() - started) * 1000.0, None, tuple(flags), refusal, error=exc.message
        )
    latency = (perf_counter() - started) * 1000.0
    text = result.text
    blocked: Literal["input", "output"] | None = None
    if policy is not None:
        checked = apply(policy, text, direction="output")
        flags += [f.rule for f in checked.flags]
        text = checked.text
        if checked.blocked:
            blocked = "output"
    return Observation(text, latency, blocked, tuple(flags), refusal, result.completion_tokens)


async def _within(call: Awaitable[Any], seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await call


def _request(
    loaded: LoadedRelease, messages: list[dict[str, str]], params: Params
) -> GenerationRequest:
    text_runtime = loaded.runtime_kind in _TEXT_RUNTIMES
    decoding = loaded.decoding or (_DEFAULT_DECODING if text_runtime else _OPEN_DECODING)
    options = params.as_request()
    merged = merge_decoding(decoding, options)
    chat: tuple[dict[str, Any], ...] = tuple(messages)
    template = loaded.template
    if text_runtime:
        prompt = (template or _DEFAULT_TEMPLATE).render(chat)
    else:
        if (
            template is not None
            and template.system
            and not any(m["role"] == "system" for m in chat)
        ):
            chat = ({"role": "system", "content": template.system}, *chat)
        prompt = "\n".join(m["content"] for m in chat)
    forward: dict[str, Any] = dict(options)
    if loaded.decoding is not None:
        forward.update(
            temperature=merged.temperature, top_p=merged.top_p, max_tokens=merged.max_tokens
        )
        if merged.stop:
            forward["stop"] = list(merged.stop)
    forward["seed"] = merged.seed
    return GenerationRequest(
        kind="chat", prompt=prompt, params=merged, messages=chat, forward=forward
    )


def _latency(cases: Sequence[CaseResult], base: Sequence[CaseResult] | None) -> dict[str, float]:
    ok = [c.latency_ms for c in cases if c.error is None]
    out = {"p50": percentile(ok, 50), "p95": percentile(ok, 95)}
    if base is not None:
        ok_base = [c.latency_ms for c in base if c.error is None]
        out |= {"baseline_p50": percentile(ok_base, 50), "baseline_p95": percentile(ok_base, 95)}
    return out


def _record(
    suite: Suite,
    release: Release,
    base: Release | None,
    cases: Sequence[CaseResult],
    base_cases: Sequence[CaseResult] | None,
    pass_cmp: Comparison | None,
    score_cmp: Comparison | None,
    latency: Mapping[str, float],
    confidence: float,
) -> dict[str, Any]:
    """The stored run: every case (paired with the baseline's) plus the summary."""
    n = len(cases)
    checks: dict[str, dict[str, int]] = {}
    for i, c in enumerate(cases):
        for ch in c.checks:
            entry = checks.setdefault(ch.check, {"n": 0, "passed": 0, "baseline_passed": 0})
            entry["n"] += 1
            entry["passed"] += ch.passed
            if base_cases is not None:
                entry["baseline_passed"] += next(
                    (b.passed for b in base_cases[i].checks if b.check == ch.check), False
                )
    rows = []
    for i, c in enumerate(cases):
        row = c.to_dict()
        if base_cases is not None:
            row["baseline"] = base_cases[i].to_dict()
        rows.append(row)
    return {
        "format": RECORD_FORMAT,
        "suite": {"name": suite.name, "digest": suite.digest(), "description": suite.description},
        "release": release.ref,
        "digest": release.digest,
        "baseline": base.ref if base else None,
        "baseline_digest": base.digest if base else None,
        "confidence": confidence,
        "summary": {
            "cases": n,
            "passed": sum(c.passed for c in cases),
            "pass_rate": sum(c.passed for c in cases) / n,
            "mean_score": sum(c.score for c in cases) / n,
            "errors": sum(c.error is not None for c in cases),
        },
        "comparison": {
            "pass_rate": pass_cmp.to_dict() if pass_cmp else None,
            "score": score_cmp.to_dict() if score_cmp else None,
        },
        "latency_ms": dict(latency),
        "checks": checks,
        "cases": rows,
    }
