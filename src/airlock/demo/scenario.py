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

The simulated customers who use the service are :class:`airlock.demo.traffic.UserTraffic`.

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
    "build_folder",
    "corpus_text",
    "datasets_of",
    "example_path",
    "user_request",
]
