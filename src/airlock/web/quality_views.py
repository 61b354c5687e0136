"""What the dashboard shows of live quality, gathered from the services layer as plain values.

* a rollout's quality card: the settings it scores with (sample share, scorers, the
  pinned judge), the verdict's quality lines, and one chart per quality metric with a
  line per release (:func:`airlock.web.charts.quality_charts`);
* a service's default quality settings (what a rollout without its own section uses);
* the shadow comparisons page: the pairs a pairwise judge compared, newest first, a
  keyset page at a time, with the tally of wins, ties and losses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airlock.core.quality import QualitySettings
from airlock.core.rollout_view import RolloutView
from airlock.core.transcripts import Prompt
from airlock.core.verdict import VerdictReport
from airlock.core.verdict_text import explain, metric_row
from airlock.errors import NotFound
from airlock.services.judged_pairs import JudgedPairs, PairFilter
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.timeline import Timeline, Window
from airlock.services.transcripts import Transcripts
from airlock.services.workspace import Workspace
from airlock.web.charts import QUALITY_METRICS, Chart, quality_charts

PAIRS_PAGE = 25
CUSTOM_PREFIX = "custom."  # how the analysis names a custom metric in a verdict


@dataclass(frozen=True, slots=True)
class ScorerRow:
    name: str
    check: str
    tolerance: float
    weight: float
    required: bool


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """Quality settings as a person reads them."""

    sample: float
    scorers: tuple[ScorerRow, ...]
    judge: dict[str, Any] | None

    @classmethod
    def of(cls, settings: QualitySettings) -> QualitySummary:
        rows = tuple(
            ScorerRow(
                name,
                json.dumps(
                    s.check.model_dump(mode="json", by_alias=True, exclude_defaults=True),
                    separators=(", ", ": "),
                ),
                s.tolerance,
                s.weight,
                s.required,
            )
            for name, s in sorted(settings.scorers.items())
        )
        judge = None if settings.judge is None else settings.judge.model_dump(mode="json")
        return cls(settings.sample, rows, judge)


def is_quality(metric: str) -> bool:
    """Whether a verdict's metric is a live quality one (``custom.quality.NAME``, ...)."""
    return metric.removeprefix(CUSTOM_PREFIX).startswith(QUALITY_METRICS)


def verdict_quality_rows(verdict: VerdictReport | None) -> list[tuple[dict[str, str], str]]:
    """The verdict's lines on quality metrics, as the verdict table shows them."""
    if verdict is None:
        return []
    return [(metric_row(m), explain(m)) for m in verdict.per_metric if is_quality(m.metric)]


def rollout_quality(ws: Workspace, view: RolloutView, w: Window) -> dict[str, Any]:
    """A rollout's quality card: settings, the verdict's quality lines, charts over ``w``."""
    settings = view.spec.quality
    sides = [("stable", view.stable), ("candidate", view.candidate)]
    charts: tuple[Chart, ...] = ()
    if settings is not None and settings.enabled:  # nothing is scored otherwise
        series = Timeline(ws).quality(view.service, w, prefixes=QUALITY_METRICS)
        charts = quality_charts(series, sides, w)
    judge = settings.judge if settings is not None else None
    pairwise = judge is not None and judge.mode == "pairwise"
    return {
        "settings": QualitySummary.of(settings) if settings is not None else None,
        "rows": verdict_quality_rows(view.last_verdict),
        "charts": charts,
        "pairwise": pairwise,
    }


def service_quality(
    ws: Workspace, serving: Serving, name: str, rollout: RolloutView | None, w: Window
) -> dict[str, Any]:
    """The service page's quality card: its defaults, and the current rollout's charts."""
    defaults = serving.quality(name)
    out: dict[str, Any] = {
        "defaults": None if defaults is None else QualitySummary.of(defaults.settings),
        "defaults_by": None if defaults is None else defaults.updated_by,
        "defaults_at": None if defaults is None else defaults.updated_at,
        "rollout": None,
    }
    if rollout is not None:
        out["rollout"] = rollout_quality(ws, rollout, w)
    return out


def prompt_text(prompt: Prompt) -> str:
    """A stored prompt as one text: a completion's text, or a chat's messages by role."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{role}: {content}" for role, content in prompt)


def pairs_page(
    ws: Workspace,
    serving: Serving,
    service: str,
    *,
    rollout_id: int | None = None,
    cursor: str | None = None,
    limit: int = PAIRS_PAGE,
) -> dict[str, Any]:
    """The shadow comparisons page: judged pairs newest first (a rollout's only, with
    ``rollout_id``), a keyset page at a time, the tally, and whether pairs are kept."""
    view = serving.get(service)
    where = PairFilter()
    rollout = None
    if rollout_id is not None:
        rollout = Rollouts(ws, serving=serving).get(rollout_id)
        if rollout.service != view.name:
            raise NotFound(f"rollout #{rollout_id} is not a rollout of {view.name}")
        where = PairFilter(rollout.candidate, rollout.created_at, rollout.finished_at)
    pairs = JudgedPairs(ws)
    page = pairs.page(view.name, where, cursor=cursor, limit=limit)
    return {
        "service": view,
        "rollout": rollout,
        "pairs": [(p, prompt_text(p.prompt)) for p in page.items],
        "next_cursor": page.next_cursor,
        "tally": pairs.tally(view.name, where),
        "keeping": Transcripts(ws).status(view.name).enabled,
    }


__all__ = [
    "PAIRS_PAGE",
    "QualitySummary",
    "ScorerRow",
    "is_quality",
    "pairs_page",
    "prompt_text",
    "rollout_quality",
    "service_quality",
    "verdict_quality_rows",
]
