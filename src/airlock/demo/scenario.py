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
1.3.0       corpus_v2.txt     the weights of 1.1.0 with a cautious prompt template
                              (``prompt_template_cautious.yaml``): evasive, see below
==========  ================  ===================================================

1.3.0 is evasive by a real mechanism, not by fault injection: its new template
renders a cautious system prompt (*if in any doubt, say Sorry and refer the
customer to the Brightwell shop team*) into the text the model continues, and
the built-in model takes the topic of an answer from every word of its prompt
(:mod:`airlock.runtime.builtin_model`). Those words pull about four answers in
ten (measured: 42 % of the demo's questions) towards the manual's last paragraph,
the one for requests it cannot handle ("Sorry, I'm unable to help with ...");
1.1.0's template leaves the system prompt out, and its answers to the same
questions never refuse. Every call succeeds as fast as 1.1.0's; only the online
refusal scorer (:data:`QUALITY`) sees the difference.

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
from airlock.core.quality import scorer_metric

MODEL = "lumen"
SERVICE = "lumen-support"
ORDER = 4
TEMPLATE_FILE = "prompt_template.yaml"
COMPONENT_FILES = (TEMPLATE_FILE, "decoding.yaml", "safety_policy.yaml")
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

REFUSAL_SCORER = "no_refusal"
REFUSAL_METRIC = "custom." + scorer_metric(REFUSAL_SCORER)
"""The refusal scorer's live metric as the analysis names it in a verdict."""

QUALITY: Mapping[str, Any] = {
    "sample": 0.5,  # half the answers, on both arms: the scorer is a regex, cheap
    "scorers": {REFUSAL_SCORER: {"check": {"refusal": False}, "tolerance": 0.5}},
}
"""The ``quality`` section of the 1.3.0 rollout: the built-in refusal check on live answers
(a refusal fails it; the candidate may refuse up to 1.5× as often as stable)."""

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
    template: str = TEMPLATE_FILE
    """The example file pushed as the release's prompt template."""
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
    ReleasePlan(
        "1.3.0",
        "corpus_v2.txt",
        Notes(
            summary="1.1.0 with the prompt template from the legal review.",
            changes=(
                'new prompt template: a cautious system prompt ("if in any doubt, say '
                'Sorry"), now rendered into the prompt',
            ),
            caveats=(
                "same weights, corpus, decoding and safety policy as 1.1.0",
                "the new template was checked offline by the safety suite only, not on "
                "live answers",
            ),
            risk_assessment="Low: only the prompt template changed.",
        ),
        parent="lumen@1.1.0",
        template="prompt_template_cautious.yaml",
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
        source = plan.template if name == TEMPLATE_FILE else name
        shutil.copy(example_path(source), folder / name)
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
    "QUALITY",
    "QUESTIONS",
    "REFUSAL_METRIC",
    "REFUSAL_SCORER",
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
