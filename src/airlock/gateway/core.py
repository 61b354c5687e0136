"""The gateway's engine: serving state, plan swaps, the request path, shadows, feedback.

No HTTP here (that is :mod:`airlock.gateway.app`); the rollout controller and
tests drive a :class:`Gateway` directly:

* ``await gateway.apply_plan(plan)`` loads what the plan needs (verifying every
  blob, in worker threads) and then swaps; ``gateway.swap_plan(plan)`` is the
  swap alone — one reference assignment, no I/O, effective for the next
  request — and needs the plan's releases loaded already. The releases of the
  previous plan stay loaded, so rolling back is a swap too.
* ``gateway.telemetry`` holds per-release counters (``windows()``, ``mark()`` /
  ``since()``, ``drain()``), ``gateway.shadow_samples()`` the recent shadow
  comparisons.

Who may call (gateway keys, scopes, rate limits) is decided before, by
``gateway.access`` (:mod:`airlock.gateway.access`); the request path receives the
caller as a ``Principal``, which decides which pins and routing headers it may
use and whether the response names its release. Response ids are signed
(:mod:`airlock.core.response_ids`), so feedback needs no table of responses.

The request path: route (plan, pin or opt-out) -> input guardrails -> prompt
template and decoding defaults -> runtime call under the release's timeout ->
output guardrails -> response. A failing candidate is retried once on the
stable release and the failure counts against the candidate (the stable
release's fallback answer is in no window: it belongs to the candidate's arm);
shadows get a copy through a bounded queue after the answer is ready.

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
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from time import perf_counter
from types import MappingProxyType
from typing import Any

from airlock.core.guardrails import SafetyPolicy, apply, redact_for_log
from airlock.core.prompting import DecodingDefaults, PromptTemplate, merge_decoding
from airlock.core.request_limits import GatewayLimits
from airlock.core.response_ids import (
    InvalidResponseId,
    ResponseTicket,
    issue_response_id,
    new_nonce,
    read_response_id,
)
from airlock.core.telemetry import ShadowSample, Traffic
from airlock.core.traffic import TrafficPlan
from airlock.errors import (
    AirlockError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from airlock.gateway import openai_wire as wire
from airlock.gateway.access import OPEN, TRUSTED, KeyRing, Principal
from airlock.gateway.feedback import FeedbackLedger, FeedbackResult, check_score
from airlock.gateway.guard import StreamGuard, watches
from airlock.gateway.routing import Route, choose
from airlock.gateway.shadow import ShadowJob, ShadowQueue
from airlock.gateway.telemetry import Key, Telemetry
from airlock.gateway.transcripts import TranscriptBuffer
from airlock.runtime.base import (
    Completion,
    Delta,
    FinishReason,
    GenerationRequest,
    RuntimeFailure,
    RuntimeTimeout,
)
from airlock.runtime.loader import LoadedRelease

log = logging.getLogger("airlock.gateway")
request_log = logging.getLogger("airlock.gateway.requests")

_DEFAULT_TEMPLATE = PromptTemplate()
_DEFAULT_DECODING = DecodingDefaults()
_OPEN_DECODING = DecodingDefaults(max_tokens_cap=1 << 30)  # an upstream enforces its own cap
_TEXT_RUNTIMES = frozenset({"builtin", "transformers"})

LoadFn = Callable[[str], LoadedRelease]


class _Skip(Exception):
    pass


class ContentBlocked(InvalidInput):
    """The request was refused by the release's safety policy (input direction)."""

    code = "content_filter"


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


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What one service serves right now; replaced as a whole, never edited."""

    plan: TrafficPlan
    releases: Mapping[str, LoadedRelease]
    opt_outs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class _Attempt:
    release: LoadedRelease
    request: GenerationRequest
    started: float
    input_flagged: bool
    ttft_ms: float | None = None  # streams: time to the first piece


class Gateway:
    def __init__(self, load: LoadFn, settings: GatewaySettings | None = None) -> None:
        self._load = load
        self.settings = settings or GatewaySettings()
        self.telemetry = Telemetry()
        self._states: Mapping[str, ServiceState] = MappingProxyType({})
        self._pool: dict[str, LoadedRelease] = {}
        self._loading: dict[str, asyncio.Future[LoadedRelease]] = {}
        self._retired: list[LoadedRelease] = []
        self.access = KeyRing(open_access=self.settings.open_access)
        self.feedback_ledger = FeedbackLedger(
            capacity=self.settings.feedback_capacity, max_age_s=self.settings.feedback_max_age_s
        )
        self._response_secret = self.settings.response_secret or secrets.token_bytes(32)
        self.transcripts = TranscriptBuffer()  # answers of services that keep transcripts
        self._samples: deque[ShadowSample] = deque(maxlen=self.settings.shadow_sample_capacity)
        self._unflushed_samples: deque[ShadowSample] = deque(
            maxlen=self.settings.shadow_sample_capacity
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.shadows = ShadowQueue(
            self._run_shadow,
            maxsize=self.settings.shadow_queue_size,
            workers=self.settings.shadow_workers,
            on_drop=self._shadow_dropped,
        )
        self.started_at = time.time()
        # Readiness: releases that failed to load (verification) and services that cannot
        # serve because of it (answered 503 with the reason, not 404).
        self.load_failures: dict[str, AirlockError] = {}
        self.unservable: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.shadows.start()

    async def aclose(self) -> None:
        await self.shadows.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        releases = {id(r): r for r in (*self._pool.values(), *self._retired)}
        self._pool.clear()
        self._retired.clear()
        self._states = MappingProxyType({})
        for release in releases.values():
            with contextlib.suppress(Exception):
                await release.aclose()

    # -- control plane ----------------------------------------------------------------
    async def load(self, refs: Iterable[str]) -> dict[str, LoadedRelease]:
        """Make sure every release in ``refs`` is loaded (each verified once, in a thread)."""
        wanted = list(dict.fromkeys(refs))
        return dict(
            zip(wanted, await asyncio.gather(*(self._ensure(r) for r in wanted)), strict=True)
        )

    async def _ensure(self, ref: str) -> LoadedRelease:
        found = self._pool.get(ref)
        if found is not None:
            return found
        pending = self._loading.get(ref)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(None, self._load, ref)
            self._loading[ref] = pending
            try:
                release = await pending
            except AirlockError as exc:
                self.load_failures[ref] = exc
                raise
            finally:
                self._loading.pop(ref, None)
            self.load_failures.pop(ref, None)
            if release.ref != ref:  # the loader canonicalised the reference
                release = replace(release, ref=ref)
            self._pool[ref] = release
            return release
        return await asyncio.shield(pending)

    async def apply_plan(self, plan: TrafficPlan) -> bool:
        """Load what ``plan`` needs, then swap to it. False when it was already served."""
        await self.load(plan.releases())
        return self.swap_plan(plan)

    def swap_plan(self, plan: TrafficPlan) -> bool:
        """Serve ``plan`` from the next request on: one atomic swap, no loading.

        A plan older than the served one is refused (``Conflict``); the same plan
        again is a no-op (False). Every release of the plan must be loaded.
        """
        current = self._states.get(plan.service)
        if current is not None:
            if plan.generation < current.plan.generation:
                raise Conflict(
                    f"plan generation {plan.generation} of {plan.service} is older than the "
                    f"served generation {current.plan.generation}",
                    hint="re-read the service's plan and derive the new plan from it",
                )
            if plan.generation == current.plan.generation:
                if current.plan.same_routing(plan):
                    return False
                raise Conflict(
                    f"{plan.service} already serves a different plan of generation "
                    f"{plan.generation}",
                    hint="a new plan needs generation + 1",
                )
        missing = [r for r in plan.releases() if r not in self._pool]
        if missing:
            raise Conflict(
                f"cannot swap {plan.service} to generation {plan.generation}: "
                f"{', '.join(missing)} not loaded",
                hint="use `await gateway.apply_plan(plan)`, which loads and then swaps",
            )
        keep = list(plan.releases())
        if current is not None:
            keep += [r for r in current.plan.releases() if r not in keep]
        state = ServiceState(
            plan=plan,
            releases=MappingProxyType({r: self._pool[r] for r in keep}),
            opt_outs=current.opt_outs if current is not None else frozenset(),
        )
        self._publish(plan.service, state)
        self.unservable.pop(plan.service, None)
        log.info("%s now serves plan generation %d", plan.service, plan.generation)
        return True

    def set_opt_outs(self, service: str, users: Iterable[str]) -> None:
        """Replace the users of ``service`` who always get its stable release."""
        state = self._state(service)
        self._publish(service, replace(state, opt_outs=frozenset(users)))

    def _publish(self, service: str, state: ServiceState) -> None:
        states = dict(self._states)
        states[service] = state
        self._states = MappingProxyType(states)  # the one atomic step readers see
        self._retire_unused()

    def _retire_unused(self) -> None:
        used = {r for s in self._states.values() for r in s.releases}
        for ref in [r for r in self._pool if r not in used]:
            release = self._pool.pop(ref)
            self._retire(release)

    def _retire(self, release: LoadedRelease) -> None:
        """Close a release nobody routes to, after requests in flight have finished."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._retired.append(release)
            return
        self._retired.append(release)

        async def later() -> None:
            await asyncio.sleep(self.settings.retire_after_s)
            if release in self._retired:
                self._retired.remove(release)
                await release.aclose()

        self._spawn(later())

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def plans(self) -> dict[str, TrafficPlan]:
        return {name: s.plan for name, s in self._states.items()}

    def plan(self, service: str) -> TrafficPlan:
        return self._state(service).plan

    def state(self, service: str) -> ServiceState:
        return self._state(service)

    def loaded(self) -> tuple[str, ...]:
        return tuple(self._pool)

    def _state(self, service: str) -> ServiceState:
        state = self._states.get(service)
        if state is None and service in self.unservable:
            raise ServiceUnavailable(
                self.unservable[service],
                hint="the other services still serve; run `airlock verify` to see what is damaged",
            )
        if state is None:
            known = ", ".join(sorted(self._states)) or "none"
            raise NotFound(
                f"the model {service!r} does not exist",
                hint=f"served services: {known}; create one with `airlock service create`",
            )
        return state

    # -- reading ------------------------------------------------------------------------
    def shadow_samples(self) -> list[ShadowSample]:
        return list(self._samples)

    def drain_shadow_samples(self) -> list[ShadowSample]:
        out = list(self._unflushed_samples)
        self._unflushed_samples.clear()
        return out

    def models(self) -> list[dict[str, Any]]:
        created = int(self.started_at)
        out = []
        for name, state in sorted(self._states.items()):
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
        state = self._state(req.service)
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
        release = state.releases[route.release]
        fallback_from = None
        try:
            attempt, result = await self._generate(
                state, release, req, route.cluster, fallback=route.fallback is not None
            )
        except RuntimeFailure as exc:
            if route.fallback is None:
                raise
            log.warning("%s failed (%s); answering from %s", release.ref, exc.kind, route.fallback)
            fallback_from = release.ref
            release = state.releases[route.fallback]
            attempt, result = await self._generate(state, release, req, None, fallback=False)
        text, finish, out_flagged, guard_status = self._guard_output(release, result)
        key: Key = (state.plan.service, release.ref, "live")
        if fallback_from is not None:
            self.telemetry.fallback_tokens(key, result.prompt_tokens, result.completion_tokens)
        else:
            self.telemetry.success(
                key,
                (perf_counter() - attempt.started) * 1000.0,
                result.prompt_tokens,
                result.completion_tokens,
                cluster=route.cluster,
                flagged=attempt.input_flagged or out_flagged,
            )
        self.access.charge(principal, result.prompt_tokens, result.completion_tokens)
        rid = self._response_id(
            req.kind, state.plan.service, fallback_from or release.ref, principal, route.cluster
        )
        body = wire.completion_body(
            req.kind,
            rid,
            int(time.time()),
            _shown_model(state, release, principal),
            replace(result, finish_reason=finish),
            text,
        )
        self._after(state, release, req, rid, text, route.cluster)
        headers_out = self._headers(state, release, route, rid, fallback_from, principal)
        if guard_status:
            headers_out["x-airlock-guardrail"] = guard_status
        elif attempt.input_flagged:
            headers_out["x-airlock-guardrail"] = "flagged"
        return Answer(body, headers_out)

    async def _generate(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        cluster: int | None,
        *,
        fallback: bool,
    ) -> tuple[_Attempt, Completion]:
        """One call; counted in ``cluster`` of the release's window (None: a fallback retry,
        not counted)."""
        attempt = self._prepare(state, release, req, "live", cluster)
        key: Key = (state.plan.service, release.ref, "live")
        timeout = self._timeout(state, release, counted=cluster is not None)
        try:
            async with asyncio.timeout(timeout):
                result = await release.runtime.generate(attempt.request)
        except TimeoutError as exc:
            failure: RuntimeFailure = RuntimeTimeout(
                f"{release.ref} did not answer within {timeout:g} s"
            )
            self._failed(key, failure.kind, cluster, fallback)
            raise failure from exc
        except RuntimeFailure as exc:
            self._failed(key, exc.kind, cluster, fallback)
            raise
        except InvalidInput:
            if cluster is not None:
                self.telemetry.rejection(key, cluster=cluster)
            raise
        except AirlockError as exc:
            self._failed(key, "model_error", cluster, fallback)
            raise RuntimeFailure(exc.message, kind="model_error") from exc
        except Exception as exc:
            self._failed(key, "model_error", cluster, fallback)
            raise RuntimeFailure(
                f"{release.ref} failed: {type(exc).__name__}: {exc}", kind="model_error"
            ) from exc
        return attempt, result

    def _failed(self, key: Key, kind: str, cluster: int | None, fallback: bool) -> None:
        if cluster is not None:  # None: a fallback retry, in no window
            self.telemetry.failure(key, kind, cluster=cluster, fallback=fallback)

    def _timeout(self, state: ServiceState, release: LoadedRelease, *, counted: bool) -> float:
        """The same cap for both arms while the service compares releases (see the settings)."""
        cap = self.settings.candidate_timeout_s
        comparing = bool(state.plan.candidates or state.plan.shadows)
        if cap is None or not counted or not comparing:
            return release.timeout_s
        return min(release.timeout_s, cap)

    def _prepare(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        traffic: Traffic,
        cluster: int | None,
    ) -> _Attempt:
        """Input guardrails, template and decoding: the request as this release takes it.

        A refusal is counted in ``cluster`` (None: a fallback retry, not counted).
        """
        started = perf_counter()
        policy = release.safety
        flagged = False
        messages, prompt = req.messages, req.prompt
        key: Key = (state.plan.service, release.ref, traffic)
        if policy is not None and watches(policy, "input"):
            try:
                messages, prompt, flagged = _guard_input(policy, req)
            except ContentBlocked:
                if cluster is not None:
                    self.telemetry.rejection(key, cluster=cluster, flagged=True)
                raise
        try:
            request = _shape(release, req, messages, prompt)
        except InvalidInput:
            if cluster is not None:
                self.telemetry.rejection(key, cluster=cluster, flagged=flagged)
            raise
        if self.settings.log_prompts and traffic == "live":
            request_log.info(
                "%s %s -> %s: %s",
                req.kind,
                req.model,
                release.ref,
                redact_for_log(policy, req.text()),
            )
        return _Attempt(release, request, started, flagged)

    def _guard_output(
        self, release: LoadedRelease, result: Completion
    ) -> tuple[str, FinishReason, bool, str | None]:
        policy = release.safety
        if policy is None or not watches(policy, "output"):
            return result.text, result.finish_reason, False, None
        checked = apply(policy, result.text, direction="output")
        if checked.blocked:
            return checked.text, "content_filter", True, "blocked"
        if checked.flags:
            return (
                checked.text,
                result.finish_reason,
                True,
                ("redacted" if checked.redacted else "flagged"),
            )
        return result.text, result.finish_reason, False, None

    def _after(
        self,
        state: ServiceState,
        release: LoadedRelease,
        req: wire.OpenAIRequest,
        rid: str,
        text: str,
        cluster: int,
    ) -> None:
        """Send copies to the plan's shadows (counted in the mirrored request's cluster)."""
        self.transcripts.record(state.plan, release, req, rid, text, cluster)
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
        release = state.releases[route.release]
        fallback_from = None
        try:
            opened = await self._open(
                state, release, req, route.cluster, fallback=route.fallback is not None
            )
        except RuntimeFailure as exc:
            if route.fallback is None:
                raise
            log.warning("%s failed (%s); streaming from %s", release.ref, exc.kind, route.fallback)
            fallback_from = release.ref
            release = state.releases[route.fallback]
            opened = await self._open(state, release, req, None, fallback=False)
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
    ) -> tuple[_Attempt, AsyncIterator[Delta], Delta]:
        attempt = self._prepare(state, release, req, "live", cluster)
        key: Key = (state.plan.service, release.ref, "live")
        pieces = release.runtime.stream(attempt.request)
        timeout = self._timeout(state, release, counted=cluster is not None)
        try:
            async with asyncio.timeout(timeout):
                first = await anext(pieces)
        except BaseException as exc:
            await _close(pieces)
            if isinstance(exc, InvalidInput):
                if cluster is not None:
                    self.telemetry.rejection(key, cluster=cluster)
                raise
            failure = _as_failure(exc, release, timeout)
            if failure is None:
                raise
            self._failed(key, failure.kind, cluster, fallback)
            raise failure from exc
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
        attempt: _Attempt,
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
        try:
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
                    delta = await anext(pieces)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            failure = _as_failure(exc, release) or RuntimeFailure(str(exc), kind="model_error")
            if failure.kind != "timeout" and isinstance(exc, StopAsyncIteration):
                failure = RuntimeFailure(
                    f"{release.ref} ended its stream early", kind="bad_response"
                )
            if fallback_from is None:
                self.telemetry.failure(key, failure.kind, cluster=cluster)
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
        flagged = attempt.input_flagged or (guard is not None and guard.flagged)
        if fallback_from is not None:
            self.telemetry.fallback_tokens(key, final.prompt_tokens, final.completion_tokens)
        else:
            self.telemetry.success(
                key,
                (perf_counter() - attempt.started) * 1000.0,
                final.prompt_tokens,
                final.completion_tokens,
                cluster=cluster,
                flagged=flagged,
                ttft_ms=attempt.ttft_ms,
            )
        self.access.charge(principal, final.prompt_tokens, final.completion_tokens)
        self._after(state, release, req, rid, "".join(sent), cluster)

    # -- shadows ----------------------------------------------------------------------------
    def _shadow_dropped(self, job: ShadowJob) -> None:
        self.telemetry.shadow_dropped((job.service, job.release, "shadow"))

    async def _run_shadow(self, job: ShadowJob) -> None:
        state = self._states.get(job.service)
        release = state.releases.get(job.release) if state is not None else None
        if state is None or release is None:
            return  # the plan moved on while the copy waited
        key: Key = (job.service, job.release, "shadow")
        timeout = self._timeout(state, release, counted=True)
        started = perf_counter()
        output, ok, error_kind = "", False, None
        try:
            attempt = self._prepare(state, release, job.request, "shadow", job.cluster)
        except InvalidInput as exc:  # counted by _prepare
            attempt, error_kind = None, exc.code
        try:
            if attempt is None:
                raise _Skip
            async with asyncio.timeout(timeout):
                result = await release.runtime.generate(attempt.request)
            output, _, out_flagged, _ = self._guard_output(release, result)
            latency_ms = (perf_counter() - started) * 1000.0
            self.telemetry.success(
                key,
                latency_ms,
                result.prompt_tokens,
                result.completion_tokens,
                cluster=job.cluster,
                flagged=attempt.input_flagged or out_flagged,
            )
            ok = True
        except _Skip:
            pass
        except InvalidInput as exc:
            error_kind = exc.code
            self.telemetry.rejection(key, cluster=job.cluster)
        except Exception as exc:
            failure = _as_failure(exc, release, timeout) or RuntimeFailure(
                str(exc), kind="model_error"
            )
            error_kind = failure.kind
            self.telemetry.failure(key, failure.kind, cluster=job.cluster)
        sample = ShadowSample(
            service=job.service,
            release=job.release,
            primary_release=job.primary_release,
            request_id=job.request_id,
            at=datetime.now(UTC),
            ok=ok,
            latency_ms=(perf_counter() - started) * 1000.0,
            output=output,
            primary_output=job.primary_output,
            error_kind=error_kind,
        )
        self._samples.append(sample)
        self._unflushed_samples.append(sample)


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


def _as_failure(
    exc: BaseException, release: LoadedRelease, timeout_s: float | None = None
) -> RuntimeFailure | None:
    if isinstance(exc, RuntimeFailure):
        return exc
    if isinstance(exc, TimeoutError):
        waited = release.timeout_s if timeout_s is None else timeout_s
        return RuntimeTimeout(f"{release.ref} did not answer within {waited:g} s")
    if isinstance(exc, StopAsyncIteration):
        return RuntimeFailure(f"{release.ref} sent an empty stream", kind="bad_response")
    if isinstance(exc, Exception):
        return RuntimeFailure(
            f"{release.ref} failed: {type(exc).__name__}: {exc}", kind="model_error"
        )
    return None


async def _close(pieces: AsyncIterator[Delta]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _guard_input(
    policy: SafetyPolicy, req: wire.OpenAIRequest
) -> tuple[tuple[dict[str, Any], ...], str, bool]:
    flagged = False
    if req.kind == "completion":
        result = apply(policy, req.prompt, direction="input")
        if result.blocked:
            raise ContentBlocked(policy.refusal, hint="the request matched the safety policy")
        return req.messages, result.text, bool(result.flags)
    messages = []
    for m in req.messages:
        result = apply(policy, m["content"], direction="input")
        if result.blocked:
            raise ContentBlocked(policy.refusal, hint="the request matched the safety policy")
        flagged = flagged or bool(result.flags)
        messages.append({**m, "content": result.text} if result.text != m["content"] else m)
    return tuple(messages), req.prompt, flagged


def _shape(
    release: LoadedRelease,
    req: wire.OpenAIRequest,
    messages: tuple[dict[str, Any], ...],
    prompt: str,
) -> GenerationRequest:
    text_runtime = release.runtime_kind in _TEXT_RUNTIMES
    decoding = release.decoding or (_DEFAULT_DECODING if text_runtime else _OPEN_DECODING)
    params = merge_decoding(decoding, req.options)
    if release.decoding is not None:
        forward: dict[str, Any] = {
            k: v for k, v in req.options.items() if k not in ("max_completion_tokens",)
        }
        forward.update(
            temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens
        )
        if params.stop:
            forward["stop"] = list(params.stop)
        if params.seed is not None:
            forward["seed"] = params.seed
    else:
        forward = dict(req.options)
    template = release.template
    if req.kind == "chat":
        if text_runtime:
            prompt = (template or _DEFAULT_TEMPLATE).render(messages)
        else:
            if (
                template is not None
                and template.system
                and not any(m["role"] == "system" for m in messages)
            ):
                messages = ({"role": "system", "content": template.system}, *messages)
            prompt = "\n".join(m["content"] for m in messages)
    elif template is not None:
        prompt = template.render_prompt(prompt)
    return GenerationRequest(
        kind=req.kind,
        prompt=prompt,
        params=params,
        messages=messages,
        forward=forward,
        user=req.user,
    )


__all__ = ["Answer", "ContentBlocked", "Gateway", "GatewaySettings", "LoadFn", "ServiceState"]
