"""Online quality: score sampled live answers off the request path, on both arms.

The engine offers every answer it sends (and the shadow runner every shadow
answer) to :class:`OnlineQuality`; when the service's plan carries quality
settings (:mod:`airlock.core.quality`) and the response id is sampled, a
:class:`QualityJob` goes on a bounded :class:`~airlock.gateway.work_queue.WorkQueue`
— ``offer`` never waits, a full queue drops the sample and counts it per
(service, release) — and a worker scores it:

* each online scorer (an offline suite check; custom scorers run in their own
  process, :class:`~airlock.services.scoring.ScorerProcess` semantics) adds a
  pass (1) or a fail (0) to the release's custom metric ``quality.NAME`` in the
  answer's analysis cluster;
* a pointwise judge adds to ``judge.score``; a pairwise judge, given a shadow
  answer and the live answer it mirrors, adds a loss to the candidate's
  ``pairwise.judge`` and a win to stable's (see :func:`airlock.core.quality.pair_counts`),
  and hands the pair to ``on_paired`` (the transcripts keep it for the shadow comparisons
  page when the service keeps transcripts).

The judge is a release loaded into the gateway's pool and held there (never
routed to, never in a service's telemetry). A judge that fails, times out or
answers something unreadable is a *judge failure*: counted in
``airlock_judge_calls_total{outcome=...}``, never against the candidate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from airlock.core import judge as judge_wire
from airlock.core.evalsuite import Case, Observation, run_check
from airlock.core.guardrails import SafetyPolicy
from airlock.core.judge import JudgeCost, JudgeUnreadable
from airlock.core.quality import (
    JUDGE_METRIC,
    PAIRWISE_METRIC,
    QualitySettings,
    pair_counts,
    sampled,
    scorer_metric,
)
from airlock.core.scorers import Scorer
from airlock.core.telemetry import Traffic
from airlock.core.traffic import TrafficPlan
from airlock.core.transcripts import JudgedPair, PairOutcome
from airlock.errors import AirlockError
from airlock.gateway import openai_wire as wire
from airlock.gateway.pool import ReleasePool
from airlock.gateway.shaping import shape
from airlock.gateway.telemetry import Key, Telemetry
from airlock.gateway.work_queue import WorkQueue

log = logging.getLogger("airlock.gateway.quality")
JudgeOutcome = Literal["ok", "failed", "timeout", "unreadable"]


@dataclass(frozen=True, slots=True)
class QualityJob:
    """One sampled answer to score (and, for a shadow answer, the live answer it mirrors)."""

    service: str
    release: str
    traffic: Traffic
    request_id: str
    prompt: str
    answer: str
    cluster: int
    settings: QualitySettings
    blocked: bool = False
    refusal_text: str | None = None
    latency_ms: float = 0.0
    stable_release: str | None = None
    stable_answer: str | None = None


class OnlineQuality:
    """Samples, queues and scores answers; results land in the gateway's telemetry."""

    def __init__(
        self,
        telemetry: Telemetry,
        pool: ReleasePool,
        *,
        queue_size: int = 512,
        workers: int = 2,
        scorers: Mapping[str, Scorer] | None = None,
        read_prompt: Callable[[str], str] | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.pool = pool
        self.scorers = dict(scorers or {})
        self.read_prompt = read_prompt
        self.queue: WorkQueue[QualityJob] = WorkQueue(
            self.score,
            maxsize=queue_size,
            workers=workers,
            on_drop=self._dropped,
            name="airlock-quality",
        )
        self._settings: dict[str, QualitySettings | None] = {}
        self._prompts: dict[str, str] = {}
        self.samples: Counter[tuple[str, str, str]] = Counter()  # (service, release, outcome)
        self.judge_calls: Counter[tuple[str, str]] = Counter()  # (judge release, outcome)
        self.judge_cost = JudgeCost()
        # (service, response id, scores, judge release) of each scored answer: the
        # transcripts keep them, where people's labels can be compared with the judge's
        self.on_scored: Callable[[str, str, dict[str, float], str | None], None] | None = None
        # each pair a pairwise judge compared, with the stable and candidate safety policies:
        # the transcripts keep them (redacted) for services that keep transcripts
        self.on_paired: (
            Callable[[JudgedPair, SafetyPolicy | None, SafetyPolicy | None], None] | None
        ) = None

    # -- what to score ---------------------------------------------------------------
    def settings_for(self, plan: TrafficPlan) -> QualitySettings | None:
        """The plan's quality settings (parsed once per distinct JSON text)."""
        text = plan.quality
        if text is None:
            return None
        if text not in self._settings:
            try:
                parsed: QualitySettings | None = QualitySettings.model_validate_json(text)
            except ValueError:
                log.error("service %s: unreadable quality settings; not scoring", plan.service)
                parsed = None
            self._settings[text] = parsed
            if parsed is not None and parsed.judge is not None:
                self.pool.hold(parsed.judge.release)
        return self._settings[text]

    def offer(self, plan: TrafficPlan, job: Callable[[QualitySettings], QualityJob]) -> bool:
        """Queue ``job`` when the plan scores answers and its response id is sampled."""
        settings = self.settings_for(plan)
        if settings is None or not settings.enabled:
            return False
        built = job(settings)
        if not sampled(built.request_id, settings.sample):
            return False
        return self.queue.submit(built)

    def _dropped(self, job: QualityJob) -> None:
        self.samples[(job.service, job.release, "dropped")] += 1
        key: Key = (job.service, job.release, job.traffic)
        self.telemetry.count(key, "quality_dropped", job.cluster)  # per arm, in the catalog

    # -- scoring ------------------------------------------------------------------------
    async def score(self, job: QualityJob) -> None:
        key: Key = (job.service, job.release, job.traffic)
        settings = job.settings
        named: dict[str, float] = {}
        if settings.scorers:
            results = await asyncio.to_thread(self._checks, job)
            for name, passed in results.items():
                self.telemetry.custom(key, scorer_metric(name), passed, job.cluster)
                named[scorer_metric(name)] = passed
        judge = settings.judge
        if judge is not None:
            if judge.mode == "pointwise":
                score = await self._ask_pointwise(job)
                if score is not None:
                    passed = 1.0 if score >= judge.threshold else 0.0
                    self.telemetry.custom(key, JUDGE_METRIC, passed, job.cluster)
                    named[JUDGE_METRIC] = score
            elif job.stable_answer is not None and job.stable_release is not None:
                outcome = await self._ask_pairwise(job)
                if outcome is not None:
                    (cand, _), (stab, _) = pair_counts(outcome)
                    self.telemetry.custom(key, PAIRWISE_METRIC, cand, job.cluster)
                    stable_key: Key = (job.service, job.stable_release, "live")
                    self.telemetry.custom(stable_key, PAIRWISE_METRIC, stab, job.cluster)
                    await self._paired(job, judge.release, outcome)
        self.samples[(job.service, job.release, "scored")] += 1
        if named and job.traffic == "live" and self.on_scored is not None:
            self.on_scored(job.service, job.request_id, named, judge.release if judge else None)

    async def _paired(self, job: QualityJob, judge: str, outcome: PairOutcome) -> None:
        """Hand a judged pair, with both releases' safety policies, to ``on_paired``."""
        if self.on_paired is None or job.stable_release is None or job.stable_answer is None:
            return
        try:
            loaded = await self.pool.load([job.stable_release, job.release])
        except AirlockError:  # cannot redact by the releases' policies: keep no text
            return
        pair = JudgedPair(
            service=job.service,
            request_id=job.request_id,
            at=datetime.now(UTC),
            stable_release=job.stable_release,
            candidate_release=job.release,
            judge=judge,
            outcome=outcome,
            prompt=job.prompt,
            stable_answer=job.stable_answer,
            candidate_answer=job.answer,
        )
        self.on_paired(pair, loaded[job.stable_release].safety, loaded[job.release].safety)

    def _checks(self, job: QualityJob) -> dict[str, float]:
        case = Case(id=job.request_id, prompt=job.prompt)
        obs = Observation(
            text=job.answer,
            latency_ms=job.latency_ms,
            blocked="output" if job.blocked else None,
            refusal_text=job.refusal_text,
        )
        return {
            name: 1.0 if run_check(s.check, case, obs, self.scorers).passed else 0.0
            for name, s in job.settings.scorers.items()
        }

    def _template(self, mode: Literal["pointwise", "pairwise"], ref: str | None) -> str:
        if ref is None:
            return (
                judge_wire.POINTWISE_PROMPT if mode == "pointwise" else judge_wire.PAIRWISE_PROMPT
            )
        if ref not in self._prompts:
            if self.read_prompt is None:
                raise JudgeUnreadable(f"judge prompt {ref} cannot be read by this gateway")
            text = self.read_prompt(ref)
            judge_wire.check_template(text, mode)
            self._prompts[ref] = text
        return self._prompts[ref]

    async def _ask(self, job: QualityJob, text: str) -> str | None:
        judge = job.settings.judge
        assert judge is not None
        try:
            release = (await self.pool.load([judge.release]))[judge.release]
            req = wire.OpenAIRequest(
                kind="chat",
                model=judge.release,
                service="airlock-judge",
                pin=judge.release,
                messages=({"role": "user", "content": text},),
                options={"temperature": 0.0, "max_tokens": judge.max_tokens},
            )
            request = shape(release, req, req.messages, req.prompt)
            async with asyncio.timeout(judge.timeout_s):
                result = await release.runtime.generate(request)
        except TimeoutError:
            self._judged(judge.release, "timeout")
            return None
        except (AirlockError, OSError) as exc:
            log.warning("judge %s failed: %s", judge.release, exc)
            self._judged(judge.release, "failed")
            return None
        self.judge_cost = self.judge_cost + JudgeCost(
            calls=1,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )
        return result.text

    async def _ask_pointwise(self, job: QualityJob) -> float | None:
        judge = job.settings.judge
        assert judge is not None
        try:
            template = self._template("pointwise", judge.prompt)
            prompt = judge_wire.pointwise_prompt(template, job.prompt, job.answer, None)
            answer = await self._ask(job, prompt)
            if answer is None:
                return None
            score = judge_wire.read_score(answer)
        except (JudgeUnreadable, AirlockError) as exc:
            log.info("judge %s: %s", judge.release, exc)
            self._judged(judge.release, "unreadable")
            return None
        self._judged(judge.release, "ok")
        return score

    async def _ask_pairwise(self, job: QualityJob) -> judge_wire.Outcome | None:
        judge = job.settings.judge
        assert judge is not None and job.stable_answer is not None
        first = judge_wire.candidate_first(job.request_id)
        try:
            template = self._template("pairwise", judge.prompt)
            prompt = judge_wire.pairwise_prompt(
                template, job.prompt, job.answer, job.stable_answer, candidate_is_a=first
            )
            answer = await self._ask(job, prompt)
            if answer is None:
                return None
            outcome = judge_wire.read_choice(answer, candidate_is_a=first)
        except (JudgeUnreadable, AirlockError) as exc:
            log.info("judge %s: %s", judge.release, exc)
            self._judged(judge.release, "unreadable")
            return None
        self._judged(judge.release, "ok")
        return outcome

    def _judged(self, release: str, outcome: JudgeOutcome) -> None:
        self.judge_calls[(release, outcome)] += 1
        if outcome == "timeout":
            self.judge_cost = self.judge_cost + JudgeCost(timeouts=1)
        elif outcome != "ok":
            self.judge_cost = self.judge_cost + JudgeCost(failures=1)


def last_prompt(req: wire.OpenAIRequest) -> str:
    """What the user asked: the last user message of a chat, or the completion prompt."""
    if req.kind == "completion":
        return req.prompt
    for message in reversed(req.messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content or "")
    return req.text()


__all__ = ["OnlineQuality", "QualityJob", "last_prompt"]
