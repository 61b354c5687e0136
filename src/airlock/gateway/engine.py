"""The gateway's engine: the request path (route, complete, stream), feedback, and the
parts it is made of.

No HTTP here (that is :mod:`airlock.gateway.app`); the rollout controller and
tests drive a :class:`Gateway` directly:

* ``await gateway.apply_plan(plan)`` loads what the plan needs and then swaps;
  ``gateway.swap_plan(plan)`` is the swap alone (the release pool,
  :mod:`airlock.gateway.pool`, holds both). The releases of the previous plan
  stay loaded, so rolling back is a swap too.
* ``gateway.telemetry`` holds per-release counters (``windows()``, ``mark()`` /
  ``since()``, ``drain()``), ``gateway.shadow_samples()`` the recent shadow
  comparisons.

Who may call (gateway keys, scopes, rate limits) is decided before, by
``gateway.access`` (:mod:`airlock.gateway.access`); the request path receives the
caller as a ``Principal``, which decides which pins and routing headers it may
use and whether the response names its release. Response ids are signed
(:mod:`airlock.core.response_ids`), so feedback needs no table of responses.

The request path: route (plan, pin or opt-out) -> input guardrails -> prompt
template and decoding defaults (:mod:`airlock.gateway.shaping`) -> runtime call
under the release's timeout, its failures mapped and counted in one place
(:mod:`airlock.gateway.failures`) -> output guardrails -> response. A failing candidate is retried once on the
stable release and the failure counts against the candidate (the stable
release's fallback answer is in no window: it belongs to the candidate's arm);
shadows get a copy through a bounded queue after the answer is ready
(:mod:`airlock.gateway.shadow`).

Every telemetry call names the request's analysis cluster (``route.cluster``,
from its user's routing bucket); a shadow copy is counted in the cluster of the
request it mirrors. While a service has a candidate or a shadow,
``candidate_timeout_s`` caps every counted call of both arms, so an arm never
looks worse for a timeout the other does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import Any, TypeVar

from airlock.core.request_limits import GatewayLimits, MiB
from airlock.core.response_ids import (
    InvalidResponseId,
    ResponseTicket,
    issue_response_id,
    new_nonce,
    read_response_id,
)
from airlock.core.telemetry import ShadowSample
from airlock.core.traffic import TrafficPlan
from airlock.errors import (
    AirlockError,
    ContentBlocked,
    Forbidden,
    InvalidInput,
    NotFound,
    RuntimeFailure,
)
from airlock.gateway import openai_wire as wire
from airlock.gateway.access import OPEN, TRUSTED, KeyRing, Principal
from airlock.gateway.body_parse import BodyParser
from airlock.gateway.failures import CountedCall
from airlock.gateway.feedback import FeedbackLedger, FeedbackResult, check_score
from airlock.gateway.guard import StreamGuard, watches
from airlock.gateway.pool import LoadFn, ReleasePool, ServiceState
from airlock.gateway.quality import OnlineQuality, QualityJob, last_prompt
from airlock.gateway.routing import Route, choose
from airlock.gateway.shadow import ShadowJob, ShadowRunner
from airlock.gateway.shaping import Attempt, guard_output, prepare
from airlock.gateway.telemetry import Key, Telemetry
from airlock.gateway.transcripts import TranscriptBuffer
from airlock.runtime.base import Completion, Delta, FinishReason
from airlock.runtime.loader import LoadedRelease

log = logging.getLogger("airlock.gateway")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    shadow_queue_size: int = 256
    shadow_workers: int = 2
    log_prompts: bool = False
    feedback_capacity: int = 100_000
    shadow_sample_capacity: int = 1_000
    retire_after_s: float = 30.0
    stream_holdback: int = 64
    # While a service has a candidate or a shadow, every counted call (both arms, so the
    # comparison is fair) gets at most this long (its release's timeout_s otherwise), so
    # users never wait out a slow canary; a fallback retry gets the release's own.
    # None = always the release's own timeout.
    candidate_timeout_s: float | None = None
    limits: GatewayLimits = field(default_factory=GatewayLimits)  # body, messages, depth, tokens
    gateway_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Gateway access: serve services without keys (loopback default; elsewhere only when
    # told --insecure-open), how old a response may be to get feedback, and the fleet's
    # response-id secret (None: a random one until the catalog sync sets the shared one).
    open_access: bool = True
    feedback_max_age_s: float = 86_400.0
    response_secret: bytes | None = None
    # Online quality scoring (off the request path): queue bound and workers per gateway,
    # and how a pinned judge prompt (a release ref) is read (None: only built-in prompts).
    quality_queue_size: int = 512
    quality_workers: int = 2
    read_judge_prompt: Callable[[str], str] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    headers: dict[str, str]


class Gateway:
    def __init__(self, load: LoadFn, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self.telemetry = Telemetry()
        self.pool = ReleasePool(load, retire_after_s=self.settings.retire_after_s)
        self.access = KeyRing(open_access=self.settings.open_access)
        self.feedback_ledger = FeedbackLedger(
            capacity=self.settings.feedback_capacity, max_age_s=self.settings.feedback_max_age_s
        )
        self._response_secret = self.settings.response_secret or secrets.token_bytes(32)
        self.transcripts = TranscriptBuffer()  # answers of services that keep transcripts
        self.shadow_runner = ShadowRunner(
            self.pool,
            self.telemetry,
            timeout_cap=self.settings.candidate_timeout_s,
            queue_size=self.settings.shadow_queue_size,
            workers=self.settings.shadow_workers,
            sample_capacity=self.settings.shadow_sample_capacity,
        )
        self.shadows = self.shadow_runner.queue
        self.quality = OnlineQuality(
            self.telemetry,
            self.pool,
            queue_size=self.settings.quality_queue_size,
            workers=self.settings.quality_workers,
            read_prompt=self.settings.read_judge_prompt,
        )
        self.shadow_runner.quality = self.quality
        self.quality.on_scored = self.transcripts.scored
        self.quality.on_paired = self.transcripts.paired
        self.started_at = time.time()
        # Readiness: releases that failed to load (verification) and services that cannot
        # serve because of it (answered 503 with the reason, not 404).
        self.load_failures = self.pool.load_failures
        self.unservable = self.pool.unservable
        # Large bodies are parsed in a worker process, off the event loop (gateway/body_parse).
        self.body_parser = BodyParser()

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.shadows.start()
        self.quality.queue.start()
        if self.settings.limits.largest_body > MiB:  # large bodies allowed: parser ready now
            self.body_parser.start()

    async def aclose(self) -> None:
        self.body_parser.close()
        await self.shadows.stop()
        await self.quality.queue.stop()
        await self.pool.aclose()

    def spawn(self, coro: Any, *, name: str | None = None) -> None:
        """Run ``coro`` beside the gateway; closing the gateway cancels it."""
        self.pool.spawn(coro, name=name)

    # -- control plane (the release pool) ----------------------------------------------
    async def load(self, refs: Iterable[str]) -> dict[str, LoadedRelease]:
        """Make sure every release in ``refs`` is loaded (each verified once, in a thread)."""
        return await self.pool.load(refs)

    async def apply_plan(self, plan: TrafficPlan) -> bool:
        """Load what ``plan`` needs, then swap to it. False when it was already served."""
        return await self.pool.apply_plan(plan)

    def swap_plan(self, plan: TrafficPlan) -> bool:
        """Serve ``plan`` from the next request on: one atomic swap, no loading."""
        return self.pool.swap_plan(plan)

    def set_opt_outs(self, service: str, users: Iterable[str]) -> None:
        """Replace the users of ``service`` who always get its stable release."""
        self.pool.set_opt_outs(service, users)

    def plans(self) -> dict[str, TrafficPlan]:
        return self.pool.plans()

    def plan(self, service: str) -> TrafficPlan:
        return self.pool.state(service).plan

    def state(self, service: str) -> ServiceState:
        return self.pool.state(service)

    def loaded(self) -> tuple[str, ...]:
        return self.pool.loaded()

    # -- reading ------------------------------------------------------------------------
    def shadow_samples(self) -> list[ShadowSample]:
        return self.shadow_runner.samples()

    def drain_shadow_samples(self) -> list[ShadowSample]:
        return self.shadow_runner.drain()

    def models(self) -> list[dict[str, Any]]:
        created = int(self.started_at)
        out = []
        for name, state in sorted(self.pool.states().items()):
            out.append({"id": name, "object": "model", "created": created, "owned_by": "airlock"})
            for ref in state.releases:
                version = ref.rpartition("@")[2]
                out.append(
                    {
                        "id": f"{name}@{version}",
                        "object": "model",
                        "created": created,
                        "owned_by": "airlock",
                    }
                )
        return out

    def set_response_secret(self, secret: bytes) -> None:
        """Sign and check response ids with the fleet's shared secret (from the catalog)."""
        self._response_secret = secret

    def response_ticket(self, response_id: str) -> ResponseTicket:
        """What a response id says, if this fleet signed it; ``NotFound`` (counted) if not."""
        try:
            return read_response_id(self._response_secret, response_id)
        except InvalidResponseId as exc:
            self.feedback_ledger.reject(exc.reason)
            raise NotFound(
                "no response with that id was issued by this gateway",
                hint="feedback must name the id of a response this gateway returned to you",
            ) from None

    def feedback(
        self,
        response_id: str,
        score: float,
        principal: Principal = OPEN,
        metrics: Mapping[str, float] | None = None,
    ) -> FeedbackResult:
        """Record a user's score in [0, 1] for a response this fleet issued to ``principal``.

        At most one score per response id: a second post replaces the first (see
        :mod:`airlock.gateway.feedback`). Refusals are counted by reason. Named
        ``metrics`` (values in [0, 1]) become the analysis's custom metrics, counted
        with the first post for a response id only.
        """
        score = check_score(score)
        ledger = self.feedback_ledger
        ticket = self.response_ticket(response_id)
        if ledger.too_old(ticket.issued_at, time.time()):
            ledger.reject("expired")
            raise InvalidInput(
                f"response {response_id[:24]}... is older than the feedback window of "
                f"{ledger.max_age_s / 3600:g} h (or no longer remembered by this gateway)",
                hint="send feedback soon after the answer",
            )
        if ticket.key_id != principal.key_id and principal is not TRUSTED:
            ledger.reject("wrong_key")
            raise Forbidden(
                "feedback must come from the gateway key that made the request",
                hint="send it with the same Authorization header as the completion",
            )
        if not principal.may("can_feedback"):
            ledger.reject("no_scope")
            principal.require("can_feedback", "send feedback")
        previous = ledger.record(response_id, ticket.issued_at, float(score), time.time())
        self.transcripts.feedback(response_id, ticket, float(score), metrics)
        key: Key = (ticket.service, ticket.release, "live")
        if previous is None:
            self.telemetry.feedback(key, float(score), cluster=ticket.cluster)
            for name, value in (metrics or {}).items():
                self.telemetry.custom(key, name, value, ticket.cluster)
        elif previous != score:
            self.telemetry.correct_feedback(key, previous, float(score), cluster=ticket.cluster)
        return FeedbackResult(ticket.service, ticket.release, float(score), previous)

    # -- the request path -------------------------------------------------------------
    def route(
        self, req: wire.OpenAIRequest, headers: Mapping[str, str], principal: Principal = OPEN
    ) -> tuple[ServiceState, Route]:
        state = self.pool.state(req.service)
        if principal.keyed:
            _check_scopes(req, headers, principal)
        user = req.user or headers.get("x-airlock-user") or headers.get("x-airlock-session")
        opted = headers.get("x-airlock-opt-out", "").lower() in ("1", "true", "yes") or (
            user is not None and user in state.opt_outs
        )
        route = choose(
            state.plan, user_key=user, pinned=req.pin, opted_out=opted, servable=state.releases
        )
        return state, route

    async def complete(
        self, req: wire.OpenAIRequest, headers: Mapping[str, str], principal: Principal = OPEN
    ) -> Answer:
        state, route = self.route(req, headers, principal)
        release, fallback_from, (attempt, result) = await self._with_fallback(
            state,
            route,
            "answering",
            lambda release, cluster, fallback: self._generate(
                state, release, req, cluster, fallback=fallback
            ),
        )
        guarded = guard_output(release, result)
        key: Key = (state.plan.service, release.ref, "live")
        self._answered(
            key, attempt, result, route.cluster, fallback_from, principal, flagged=guarded.flagged
        )
        rid = self._response_id(
            req.kind, state.plan.service, fallback_from or release.ref, principal, route.cluster
        )
        body = wire.completion_body(
            req.kind,
            rid,
            int(time.time()),
            _shown_model(state, release, principal),
            replace(result, finish_reason=guarded.finish_reason),
            guarded.text,
        )
        self._after(
            state,
            release,
            req,
            rid,
            guarded.text,
            route.cluster,
            scored=fallback_from is None,
            blocked=guarded.status == "blocked",
            latency_ms=(perf_counter() - attempt.started) * 1000.0,
        )
        headers_out = self._headers(state, release, route, rid, fallback_from, principal)
        if guarded.status:
            headers_out["x-airlock-guardrail"] = guarded.status
        elif attempt.input_flagged:
            headers_out["x-airlock-guardrail"] = "flagged"
        return Answer(body, headers_out)

    def _answered(
        self,
        key: Key,
        attempt: Attempt,
        result: Completion,
        cluster: int,
        fallback_from: str | None,
        principal: Principal,
        *,
        flagged: bool,
    ) -> None:
        """Count an answer in ``cluster`` (a fallback answer: its tokens only, in no
        window) and charge the caller's key for its tokens."""
        if fallback_from is not None:
            self.telemetry.fallback_tokens(key, result.prompt_tokens, result.completion_tokens)
        else:
            self.telemetry.success(
                key,
                (perf_counter() - attempt.started) * 1000.0,
                result.prompt_tokens,
                result.completion_tokens,
                cluster=cluster,
                flagged=attempt.input_flagged or flagged,
                ttft_ms=attempt.ttft_ms,
            )
        self.access.charge(principal, result.prompt_tokens, result.completion_tokens)

    async def _with_fallback(
        self,
        state: ServiceState,
        route: Route,
        doing: str,
        call: Callable[[LoadedRelease, int | None, bool], Awaitable[T]],
    ) -> tuple[LoadedRelease, str | None, T]:
        """``call`` the routed release (counted in the route's cluster); if it fails and the
        route has a fallback, once more on the stable release (not counted). Returns the
        release that answered, the one it stands in for (or None), and the result."""
        release = state.releases[route.release]
        try:
            return release, None, await call(release, route.cluster, route.fallback is not None)
        except RuntimeFailure as exc:
            if route.fallback is None:
                raise
            log.warning("%s failed (%s); %s from %s", release.ref, exc.kind, doing, route.fallback)
            stable = state.releases[route.fallback]
            return stable, release.ref, await call(stable, None, False)

    def _calls(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        cluster: int | None,
        *,
        fallback: bool,
    ) -> tuple[Attempt, CountedCall]:
        """Shape ``req`` for ``release`` (a refusal counted in ``cluster``; None: a fallback
        retry, not counted) and the counted call to run it in."""
        key: Key = (state.plan.service, release.ref, "live")
        timeout = state.timeout_for(
            release, self.settings.candidate_timeout_s, counted=cluster is not None
        )
        with CountedCall(self.telemetry, key, timeout, cluster) as shaping:
            attempt = prepare(release, req, shaping, log_prompt=self.settings.log_prompts)
        return attempt, CountedCall(self.telemetry, key, timeout, cluster, fallback=fallback)

    async def _generate(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        cluster: int | None,
        *,
        fallback: bool,
    ) -> tuple[Attempt, Completion]:
        """One call; counted in ``cluster`` of the release's window (None: a fallback retry,
        not counted)."""
        attempt, call = self._calls(state, release, req, cluster, fallback=fallback)
        with call:
            async with asyncio.timeout(call.timeout_s):
                result = await release.runtime.generate(attempt.request)
        return attempt, result

    def _after(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        rid: str,
        text: str,
        cluster: int,
        *,
        scored: bool = True,
        blocked: bool = False,
        latency_ms: float = 0.0,
    ) -> None:
        """Keep the transcript, offer the answer for scoring (not a fallback's: it stands in
        for a failed candidate) and send copies to the plan's shadows."""
        self.transcripts.record(state.plan, release, req, rid, text, cluster)
        if scored:
            self.quality.offer(
                state.plan,
                lambda settings: QualityJob(
                    service=state.plan.service,
                    release=release.ref,
                    traffic="live",
                    request_id=rid,
                    prompt=last_prompt(req),
                    answer=text,
                    cluster=cluster,
                    settings=settings,
                    blocked=blocked,
                    refusal_text=release.safety.refusal if release.safety is not None else None,
                    latency_ms=latency_ms,
                ),
            )
        for shadow in state.plan.shadows:
            if shadow != release.ref:
                self.shadows.submit(
                    ShadowJob(state.plan.service, shadow, release.ref, rid, req, text, cluster)
                )

    def _headers(
        self,
        state: ServiceState,
        release: LoadedRelease,
        route: Route,
        rid: str,
        fallback_from: str | None,
        principal: Principal = OPEN,
    ) -> dict[str, str]:
        if not principal.may("can_pin"):  # which release answered is for pinning keys only
            return {"x-airlock-service": state.plan.service, "x-request-id": rid}
        headers = {
            "x-airlock-release": release.ref,
            "x-airlock-service": state.plan.service,
            "x-airlock-route": "fallback" if fallback_from else route.reason,
            "x-airlock-plan-generation": str(state.plan.generation),
            "x-request-id": rid,
        }
        if fallback_from:
            headers["x-airlock-fallback-from"] = fallback_from
        return headers

    def _response_id(
        self, kind: str, service: str, release: str, principal: Principal, cluster: int
    ) -> str:
        """A signed id naming the release whose arm answered (the candidate, for a fallback
        answer: feedback on it counts against the candidate) and the user's cluster."""
        ticket = ResponseTicket(
            kind, service, release, principal.key_id, time.time(), new_nonce(), cluster
        )
        return issue_response_id(self._response_secret, ticket)

    # -- streaming ------------------------------------------------------------------------
    async def stream(
        self, req: wire.OpenAIRequest, headers: Mapping[str, str], principal: Principal = OPEN
    ) -> tuple[dict[str, str], AsyncIterator[bytes]]:
        """Open a stream; fallback is possible until the first piece has arrived."""
        state, route = self.route(req, headers, principal)
        release, fallback_from, opened = await self._with_fallback(
            state,
            route,
            "streaming",
            lambda release, cluster, fallback: self._open(
                state, release, req, cluster, fallback=fallback
            ),
        )
        rid = self._response_id(
            req.kind, state.plan.service, fallback_from or release.ref, principal, route.cluster
        )
        headers_out = self._headers(state, release, route, rid, fallback_from, principal)
        return headers_out, self._sse(
            state, release, req, rid, route.cluster, fallback_from, principal, *opened
        )

    async def _open(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        cluster: int | None,
        *,
        fallback: bool,
    ) -> tuple[Attempt, AsyncIterator[Delta], Delta]:
        attempt, call = self._calls(state, release, req, cluster, fallback=fallback)
        pieces = release.runtime.stream(attempt.request)
        try:
            with call:
                async with asyncio.timeout(call.timeout_s):
                    first = await anext(pieces)
        except BaseException:
            await _close(pieces)
            raise
        attempt.ttft_ms = (perf_counter() - attempt.started) * 1000.0
        return attempt, pieces, first

    async def _sse(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        rid: str,
        cluster: int,
        fallback_from: str | None,
        principal: Principal,
        attempt: Attempt,
        pieces: AsyncIterator[Delta],
        first: Delta,
    ) -> AsyncIterator[bytes]:
        """The stream to the client; counted in ``cluster`` unless it is a fallback answer."""
        kind, created = req.kind, int(time.time())
        model = _shown_model(state, release, principal)
        key: Key = (state.plan.service, release.ref, "live")
        policy = release.safety
        guard = (
            StreamGuard(policy, holdback=self.settings.stream_holdback)
            if policy is not None and watches(policy, "output")
            else None
        )
        if kind == "chat":
            yield wire.chunk(kind, rid, created, model, text="", role=True)
        delta, final, sent = first, None, []
        counted = None if fallback_from is not None else cluster
        try:
            with CountedCall(self.telemetry, key, release.timeout_s, counted):
                while True:
                    if delta.text:
                        out = guard.feed(delta.text) if guard is not None else delta.text
                        if out:
                            sent.append(out)
                            yield wire.chunk(kind, rid, created, model, text=out)
                        if guard is not None and guard.blocked:
                            final = delta.final or Completion("", 0, 0)
                            break
                    if delta.final is not None:
                        final = delta.final
                        break
                    async with asyncio.timeout(release.timeout_s):
                        delta = await _next(pieces, release.ref)
        except AirlockError as failure:
            yield wire.error_event(failure)
            yield wire.DONE
            return
        finally:
            await _close(pieces)
        finish: FinishReason = final.finish_reason
        if guard is not None:
            rest = guard.finish()
            if rest:
                sent.append(rest)
                yield wire.chunk(kind, rid, created, model, text=rest)
            if guard.blocked:
                finish = "content_filter"
        yield wire.chunk(kind, rid, created, model, finish=finish)
        if req.include_usage:
            yield wire.chunk(kind, rid, created, model, usage_of=final)
        yield wire.DONE
        flagged = guard is not None and guard.flagged
        self._answered(key, attempt, final, cluster, fallback_from, principal, flagged=flagged)
        self._after(
            state,
            release,
            req,
            rid,
            "".join(sent),
            cluster,
            scored=fallback_from is None,
            blocked=guard is not None and guard.blocked,
            latency_ms=(perf_counter() - attempt.started) * 1000.0,
        )


# -- helpers ------------------------------------------------------------------------------


def _check_scopes(
    req: wire.OpenAIRequest, headers: Mapping[str, str], principal: Principal
) -> None:
    """A keyed caller may steer routing only with the scopes for it: 403, never ignored."""
    if req.pin is not None:
        principal.require("can_pin", f"pin a release (model {req.model!r})")
    for header in ("x-airlock-user", "x-airlock-session"):
        if header in headers:
            principal.require("can_pin", f"choose its routing key ({header})")
    if "x-airlock-opt-out" in headers:
        principal.require("can_opt_out", "opt out of rollouts (x-airlock-opt-out)")


def _shown_model(state: ServiceState, release: LoadedRelease, principal: Principal) -> str:
    return release.ref if principal.may("can_pin") else state.plan.service


async def _next(pieces: AsyncIterator[Delta], ref: str) -> Delta:
    """The next piece of a stream that has begun; its end before the final piece is a failure."""
    try:
        return await anext(pieces)
    except StopAsyncIteration:
        raise RuntimeFailure(f"{ref} ended its stream early", kind="bad_response") from None


async def _close(pieces: AsyncIterator[Delta]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


__all__ = ["Answer", "ContentBlocked", "Gateway", "GatewaySettings", "LoadFn", "ServiceState"]
