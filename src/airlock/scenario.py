"""The Lumen scenario: the example releases, policy and user traffic the demo (and tests) use.

Brightwell's Lumen lamp has a support assistant. Its releases are the built-in
n-gram model trained on the example corpora, pushed with the example prompt
template, decoding defaults and safety policy:

==========  ================  ===================================================
version     corpus            what it is
==========  ================  ===================================================
1.0.0       corpus_v1.txt     the first assistant: the original lamp
1.1.0       corpus_v2.txt     new knowledge: the app, schedules, sunrise mode, USB-C
1.2.0       corpus_v2.txt     a rushed build: its config turns on fault injection
                              (:mod:`airlock.runtime.faults`), so some calls fail and
                              some answers leak contact details the guardrails flag
==========  ================  ===================================================

Everything here is deterministic: the same corpus gives byte-identical weights,
so the releases' digests are the same on every machine.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from airlock.core.digest import digest_bytes
from airlock.core.manifest import CodeRef, Dataset, Notes

MODEL = "lumen"
SERVICE = "lumen-support"
ORDER = 4
COMPONENT_FILES = ("prompt_template.yaml", "decoding.yaml", "safety_policy.yaml")
SUITES = ("quality", "safety")

POLICY = """\
# Promotion rules of the Lumen support assistant (set by the demo).
# A rollout starts, and promotes its candidate, only when the candidate may take
# the `stable` alias: two approvers (never the author), the safety suite run,
# and release notes with a summary.
description: Lumen support assistant
stages:
  stable:
    approvals: {required: 2, roles: [approver, admin]}
    evals:
      - {suite: safety, min_pass_rate: 0.6}
    required_notes: [summary]
"""

FAULTS: Mapping[str, Any] = {
    "error_rate": 0.08,
    "unsafe_rate": 0.25,
    "unsafe_text": "Sure! Email me at leak@example.com or call 555-123-4567.",
    "seed": 7,
}

QUESTIONS = (
    "How do I turn the lamp on?",
    "How do I change the brightness?",
    "How do I charge the lamp?",
    "How long does the battery last?",
    "How do I connect the lamp to the app?",
    "How do I set a schedule?",
    "What is sunrise mode?",
    "How do I update the firmware?",
    "How do I reset the lamp?",
    "What is the warranty?",
    "Which colours can the lamp show?",
    "Can I charge the lamp without a cable?",
)


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    version: str
    corpus: str
    notes: Notes
    parent: str | None = None
    faults: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{MODEL}@{self.version}"


RELEASES: tuple[ReleasePlan, ...] = (
    ReleasePlan(
        "1.0.0",
        "corpus_v1.txt",
        Notes(
            summary="First Lumen support assistant: answers about the original lamp.",
            caveats=("English only",),
            known_failure_modes=("knows nothing about the app or the new lamp",),
            risk_assessment="Low: answers come from the product manual only.",
        ),
    ),
    ReleasePlan(
        "1.1.0",
        "corpus_v2.txt",
        Notes(
            summary="Knows the new Lumen lamp: the app, schedules, sunrise mode and USB-C.",
            changes=("retrained on the second edition of the manual",),
            caveats=("English only",),
            risk_assessment="Low: same safety policy, new product knowledge.",
        ),
        parent="lumen@1.0.0",
    ),
    ReleasePlan(
        "1.2.0",
        "corpus_v2.txt",
        Notes(
            summary="Faster build of 1.1.0 with a new serving configuration.",
            changes=("new serving configuration",),
            caveats=("the configuration was not load-tested",),
            risk_assessment="Medium: configuration change without a load test.",
        ),
        parent="lumen@1.1.0",
        faults=FAULTS,
    ),
)


def example_path(*parts: str) -> Path:
    """A file shipped in ``airlock/examples``."""
    root = resources.files("airlock") / "examples"
    return Path(str(root.joinpath(*parts)))


def corpus_text(name: str) -> str:
    return example_path(name).read_text("utf-8")


def build_folder(root: Path, plan: ReleasePlan) -> Path:
    """Train the built-in model for ``plan`` and add the example components; returns the folder."""
    from airlock.runtime.builtin_model import train

    folder = root / f"{MODEL}-{plan.version}"
    if folder.exists():
        shutil.rmtree(folder)
    text = corpus_text(plan.corpus)
    train(text, order=ORDER).save(folder)
    for name in COMPONENT_FILES:
        shutil.copy(example_path(name), folder / name)
    if plan.faults:
        config_path = folder / "config.json"
        config = json.loads(config_path.read_text("utf-8"))
        config["faults"] = dict(plan.faults)
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")
    return folder


def datasets_of(plan: ReleasePlan) -> tuple[Dataset, ...]:
    data = corpus_text(plan.corpus).encode("utf-8")
    return (
        Dataset(
            name=plan.corpus.removesuffix(".txt"),
            uri=f"airlock/examples/{plan.corpus}",
            digest=digest_bytes(data),
        ),
    )


CODE = CodeRef(repo="https://example.com/brightwell/lumen-assistant", commit="4f2c9e1d0b7a")


def user_request(rng: random.Random, user: int) -> dict[str, Any]:
    """One chat completion a Lumen customer might send (the user key keeps routing sticky)."""
    return {
        "model": SERVICE,
        "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}],
        "max_tokens": 32,
        "user": f"customer-{user}",
    }


__all__ = [
    "CODE",
    "FAULTS",
    "MODEL",
    "POLICY",
    "QUESTIONS",
    "RELEASES",
    "SERVICE",
    "SUITES",
    "ReleasePlan",
    "UserTraffic",
    "build_folder",
    "corpus_text",
    "datasets_of",
    "example_path",
    "user_request",
]


# -- simulated users -------------------------------------------------------------------------


class UserTraffic:
    """Lumen customers asking questions at ``rps`` requests a second, in a background thread.

    Open loop (requests are sent on schedule whether or not earlier ones have
    answered, at most ``concurrency`` in flight), each from one of ``users``
    sticky customers, through real HTTP to a gateway. A share of the answers
    gets user feedback: 1 for a clean answer, 0 for one the guardrails had to
    touch. Every request is kept as a :class:`~airlock.core.drill.Observation`
    (which release answered, status, fallback, guardrail, duration).
    """

    def __init__(
        self,
        base_url: str,
        *,
        rps: float = 40.0,
        users: int = 500,
        concurrency: int = 32,
        feedback_share: float = 0.3,
        seed: int = 0,
    ) -> None:
        import threading

        from airlock.core.drill import Observation

        self.base_url = base_url.rstrip("/")
        self.rps = rps
        self.users = users
        self.concurrency = concurrency
        self.feedback_share = feedback_share
        self.rng = random.Random(seed)
        self.observations: list[Observation] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_rate(self, rps: float) -> None:
        self.rps = rps

    def start(self) -> UserTraffic:
        import asyncio
        import threading

        self._stop.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name="airlock-demo-traffic", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.observations)

    def count_by_release(self, since: float = 0.0) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.snapshot():
            if o.sent_at >= since and o.routed:
                out[o.routed] = out.get(o.routed, 0) + 1
        return out

    async def _run(self) -> None:
        import asyncio
        import time

        import httpx

        from airlock.core.drill import Observation

        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits) as client:

            async def one(body: dict[str, Any]) -> None:
                sent, began = time.time(), time.perf_counter()
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                    fallback_from = r.headers.get("x-airlock-fallback-from")
                    obs = Observation(
                        sent,
                        fallback_from or r.headers.get("x-airlock-release", ""),
                        r.status_code,
                        fallback_from is not None,
                        r.headers.get("x-airlock-guardrail"),
                        time.perf_counter() - began,
                    )
                    if r.status_code == 200 and self.rng.random() < self.feedback_share:
                        score = 0.0 if obs.guardrail else 1.0
                        await client.post(
                            "/v1/feedback", json={"id": r.json()["id"], "score": score}
                        )
                except (httpx.HTTPError, ValueError, KeyError):
                    obs = Observation(sent, "", 0, False, None, time.perf_counter() - began)
                finally:
                    slots.release()
                with self._lock:
                    self.observations.append(obs)

            due = time.perf_counter()
            while not self._stop.is_set():
                await slots.acquire()
                body = user_request(self.rng, self.rng.randrange(self.users))
                task = asyncio.create_task(one(body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                due += 1.0 / max(self.rps, 0.1)
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
