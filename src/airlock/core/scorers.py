"""The built-in evaluation scorers and the value they score (pure functions).

A suite's ``{scorer: NAME}`` check names a *registered* scorer: one of these, or an
entry point in the ``airlock.scorers`` group that an admin installed; never an
arbitrary ``module:function`` (see :mod:`airlock.services.scoring`, which runs them
in a separate process under a time limit).

=====================  =============================================================
``token_f1``           F1 of the words of the answer against the case's ``reference``
``keyword_overlap``    share of ``args.keywords`` (else the reference's words) found in
                       the answer; ``args.min``: how many make a full score
=====================  =============================================================

Kept free of third-party imports: the scorer process imports this module first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class ScorerInput:
    output: str
    prompt: str
    reference: str | None
    args: Mapping[str, Any]


Scorer = Callable[[ScorerInput], float | bool]


class ScorerError(Exception):
    """A scorer could not score (failed, timed out, not loadable): the check fails with this."""


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def token_f1(x: ScorerInput) -> float:
    want, got = Counter(_words(x.reference or "")), Counter(_words(x.output))
    common = sum((want & got).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def keyword_overlap(x: ScorerInput) -> float:
    raw = x.args.get("keywords")
    keywords = [str(k).casefold() for k in raw] if isinstance(raw, list) else None
    wanted = keywords if keywords is not None else sorted(set(_words(x.reference or "")))
    if not wanted:
        return 0.0
    text = x.output.casefold()
    found = sum(1 for k in wanted if k in text)
    need = x.args.get("min", len(wanted))
    need = need if isinstance(need, int) and not isinstance(need, bool) and need > 0 else 1
    return min(1.0, found / min(need, len(wanted)))


BUILTIN_SCORERS: dict[str, Scorer] = {"token_f1": token_f1, "keyword_overlap": keyword_overlap}

__all__ = [
    "BUILTIN_SCORERS",
    "Scorer",
    "ScorerError",
    "ScorerInput",
    "keyword_overlap",
    "token_f1",
]
