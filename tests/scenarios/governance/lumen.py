"""The Lumen example as real releases: the built-in model trained on each example corpus,
pushed with the example prompt template, decoding defaults and safety policy."""

from __future__ import annotations

import shutil
from pathlib import Path

from airlock.runtime.builtin_model import train
from airlock.services.identity import Actor
from airlock.services.registry import Registry

EXAMPLES = Path(__file__).parents[3] / "src" / "airlock" / "examples"
SUITES = EXAMPLES / "suites"
COMPONENT_FILES = ("prompt_template.yaml", "decoding.yaml", "safety_policy.yaml")
ORDER = 4


def lumen_folder(root: Path, corpus: str, *, order: int = ORDER) -> Path:
    """A release folder: the built-in model trained on ``corpus`` plus the example components."""
    folder = root / f"{Path(corpus).stem}-o{order}"
    if not folder.exists():
        train((EXAMPLES / corpus).read_text("utf-8"), order=order).save(folder)
        for name in COMPONENT_FILES:
            shutil.copy(EXAMPLES / name, folder / name)
    return folder


def push_lumen(
    registry: Registry,
    root: Path,
    *,
    version: str,
    corpus: str,
    actor: Actor,
    name: str = "lumen",
    parent: str | None = None,
) -> str:
    result = registry.push(
        lumen_folder(root, corpus), name=name, version=version, actor=actor, parent=parent
    )
    return result.ref
