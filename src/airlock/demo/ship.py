"""Act 3 of the demo, *Ship*: serve, simulated customers, and three narrated rollouts.

v1.1.0 goes out as a canary and is promoted by the analysis; v1.2.0 (faults: failed
calls, leaked contact details) is rolled back, and the customers' own requests
measure the time to detect and to revert; v1.3.0 (an evasive prompt template: no
errors, no slowdown) goes out with online scoring and is rolled back by the refusal
scorer — the narration reads from the verdict which signal fired and on how many
scored answers.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from airlock.cli.render import verdict_table
from airlock.core.drill import Observation
from airlock.core.verdict import VerdictReport
from airlock.demo import scenario
from airlock.demo.narration import detectable, fired, fired_signal, quiet_signals, secs
from airlock.demo.traffic import UserTraffic

if TYPE_CHECKING:
    from airlock.demo.lifecycle import Demo


class Ship:
    """Act 3 of :class:`~airlock.demo.lifecycle.Demo`: it narrates through the demo and
    records what it measured in ``demo.result``."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.traffic: UserTraffic | None = None

    def run(self) -> Any:
        from airlock.serve import AirlockApp, RunningServer, ServeSettings
        from airlock.services.controller import ControllerSettings

        demo, options, result = self.demo, self.demo.options, self.demo.result
        t0 = time.perf_counter()
        logging.getLogger("airlock").setLevel(logging.ERROR)  # the demo narrates instead
        demo.act(
            3, "Ship", "serve v1.0.0, canary v1.1.0 under live traffic, then v1.2.0 and v1.3.0"
        )
        fast = options.fast
        settings = ServeSettings(
            host=options.host,
            port=options.port,
            sync_seconds=0.5 if fast else 1.0,
            controller=ControllerSettings(
                tick_seconds=0.5 if fast else 1.0, history_every_seconds=10.0
            ),
            log_level="error",
        )
        server = RunningServer(AirlockApp(demo.ws, settings)).start()
        server.wait_ready()
        result.url = server.url
        demo.done(
            f"airlock serve on {server.url}: dashboard /, REST /api/v1, gateway /v1 (OpenAI API)"
        )
        traffic = UserTraffic(server.url, rps=options.rps).start()
        self.traffic = demo.traffic = traffic
        demo.say(f"{options.rps:g} requests/s from 500 simulated customers (30 % leave feedback)")
        try:
            result.promoted_rollout = self.rollout("lumen@1.1.0", "the new lamp", expect="promoted")
            result.rolled_back_rollout = self.rollout(
                "lumen@1.2.0", "faster serving configuration", expect="rolled_back"
            )
            demo.say(
                "[dim]v1.3.0 keeps 1.1.0's weights; only its prompt template changed. Errors "
                "and latency cannot see what a prompt does to answers, so olga's spec turns "
                "on online scoring: the refusal check on half the answers of both arms.[/]"
            )
            result.evasive_rollout = self.rollout(
                "lumen@1.3.0",
                "prompt template from the legal review",
                expect="rolled_back",
                quality=True,
            )
        finally:
            traffic.set_rate(5.0)  # a trickle keeps the dashboard's charts alive
        result.timings["ship"] = time.perf_counter() - t0
        return server

    def observations(self) -> list[Observation]:
        """Every request the simulated customers sent so far, as they saw it."""
        if self.traffic is None:
            raise RuntimeError("the simulated customers start in Ship.run")
        return self.traffic.snapshot()

    def rollout(self, candidate: str, why: str, *, expect: str, quality: bool = False) -> int:
        """Start a canary of ``candidate``, narrate its steps and its end; returns its id."""
        from airlock.services.rollouts import Rollouts

        rollouts = Rollouts(self.demo.ws)
        started_at, t0 = time.time(), time.perf_counter()
        plan = next(p for p in scenario.RELEASES if p.ref == candidate)
        view = rollouts.start(
            scenario.SERVICE,
            candidate,
            self.demo.options.canary(quality=quality),
            actor=self.demo.people["olga"],
            reason=why,
        ).rollout
        scored = " with online scoring" if quality else ""
        self.demo.say(
            f"[bold]olga[/] starts rollout #{view.id}: {candidate}, canary 20 % → 50 % → "
            f"100 %{scored}"
        )
        seen: set[tuple[str, int]] = set()
        deadline = time.time() + 100
        while view.live and time.time() < deadline:
            time.sleep(0.2)
            view = rollouts.get(view.id)
            key = (view.phase, view.state.step_index)
            if key not in seen and view.live:
                seen.add(key)
                verdict = view.last_verdict
                self.demo.say(
                    f"  step {view.state.step_index + 1}/{len(view.steps)}: "
                    f"{view.candidate_weight / 100:g} % of users on {candidate}"
                    + (f" [dim](last verdict: {verdict.outcome})[/]" if verdict else "")
                    + detectable(verdict)
                )
        if view.live:
            rollouts.abort(
                scenario.SERVICE, actor=self.demo.people["olga"], reason="demo timed out"
            )
            view = rollouts.get(view.id)
        history = rollouts.history(view.id)
        last = history[-1]
        colour = "green" if view.phase == "promoted" else "red"
        self.demo.say(
            f"rollout #{view.id} [bold {colour}]{view.phase.replace('_', ' ')}[/]: {last.reason}"
        )
        if last.verdict:
            self.demo.console.print(verdict_table(last.verdict, brief=True), justify="left")
        if view.phase == "rolled_back" and plan.faults:
            self.faults_story(candidate, started_at, last.at.timestamp())
        elif view.phase == "rolled_back":
            self.quality_story(candidate, started_at, last.at.timestamp(), last.verdict)
        elif view.phase == "promoted":
            self.demo.done(f"{candidate} is stable now: alias stable moved, every user on it")
        if view.phase != expect:
            self.demo.console.print(f"  [bold red]expected {expect}, got {view.phase}[/]")
        self.demo.result.timings[f"rollout {candidate}"] = time.perf_counter() - t0
        return view.id

    def faults_story(self, candidate: str, started_at: float, decided_at: float) -> None:
        """What the customers of a faulty candidate saw: time to detect and to revert."""
        from airlock.core.drill import summarize

        result = self.demo.result
        time.sleep(1.5)  # keep traffic flowing to see the revert
        summary = summarize(
            self.observations(),
            faulty=candidate,
            faults=scenario.FAULTS,
            started_at=started_at,
            decided_at=decided_at,
        )
        result.detect_seconds = summary.detect_seconds
        result.revert_seconds = summary.revert_seconds
        result.faulty_requests = summary.faulty_requests
        result.faulted_requests = summary.faulted_requests
        result.user_errors = summary.user_errors
        self.demo.say(
            f"time to detect [bold]{secs(summary.detect_seconds)}[/] (first request on "
            f"{candidate} → rollback decision); time to revert "
            f"[bold]{secs(summary.revert_seconds)}[/] (decision → every new request on "
            f"stable)"
        )
        self.demo.say(
            f"{summary.faulty_requests} requests went to {candidate}; "
            f"{summary.faulted_requests} of them saw the fault, and "
            f"{summary.user_errors} customers got an error (failed calls were answered "
            "by stable)"
        )

    def quality_story(
        self,
        candidate: str,
        started_at: float,
        decided_at: float,
        verdict: VerdictReport | None,
    ) -> None:
        """Which signal rolled an evasive candidate back, on how many scored answers, how fast."""
        from airlock.core.drill import summarize

        result = self.demo.result
        since = [o for o in self.observations() if o.sent_at >= started_at]
        summary = summarize(
            since, faulty=candidate, faults={}, started_at=started_at, decided_at=decided_at
        )
        result.evasive_detect_seconds = summary.detect_seconds
        metric = fired(verdict) if verdict is not None else None
        if verdict is None or metric is None:
            self.demo.console.print("  [bold red]the rollback verdict names no failing metric[/]")
            return
        result.evasive_signal = metric.metric
        result.evasive_scored = metric.n_candidate + metric.n_stable
        self.demo.say(
            f"{quiet_signals(verdict)} ({summary.faulty_requests} requests went to "
            f"{candidate}; {summary.user_errors} customers got an error)"
        )
        self.demo.say(
            f"[bold]{fired_signal(verdict)}[/]; rolled back "
            f"[bold]{secs(summary.detect_seconds)}[/] after the first request on {candidate}"
        )


__all__ = ["Ship"]
