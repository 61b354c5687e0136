"""Release specs: a YAML/JSON file that assembles a release from files anywhere on disk.

```yaml
name: chat
version: 1.2.0
files:                         # release path  <-  source file (relative to this spec)
  - {path: model.safetensors, source: ../train/out/model.safetensors}
  - {path: tokenizer.json, source: ../tok/tokenizer.json}
components: {base_model: llama@3.1.0}
parent: chat@1.1.0
datasets: ["tickets=../data/tickets.jsonl"]
metrics: {accuracy: 0.81}
notes: {summary: "...", caveats: ["..."]}
code: {repo: "git@example:ml/chat", commit: abc123}
training_config: {lr: 0.0002}
```

Every release path is validated (relative POSIX, no ``..``, no duplicates)
before a byte is stored.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airlock.core.documents import validation_message
from airlock.core.limits import quoted
from airlock.core.manifest import CodeRef, Dataset, FiniteFloat, Notes
from airlock.core.names import check_relative_path
from airlock.errors import InvalidInput, NotFound
from airlock.services.ingest import SourceFile
from airlock.services.push_inputs import dataset_from_spec, load_structured


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    source: str


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    version: str | None = None
    files: list[_SpecFile] = Field(default_factory=list)
    components: dict[str, str] = Field(default_factory=dict)
    parent: str | None = None
    datasets: list[str] = Field(default_factory=list)
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    notes: Notes | None = None
    code: CodeRef | None = None
    training_config: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    name: str | None
    version: str | None
    sources: list[SourceFile]
    components: dict[str, str]
    parent: str | None
    datasets: list[Dataset]
    metrics: dict[str, float]
    notes: Notes | None
    code: CodeRef | None
    training_config: dict[str, Any]


def load_spec(path: Path) -> ReleaseSpec:
    raw = load_structured(path, "release spec")
    if isinstance(raw, dict) and isinstance(raw.get("notes"), dict):
        raw["notes"] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw["notes"].items()}
    try:
        spec = _Spec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(
            f"release spec {path}: {validation_message(exc, 'spec')}",
            hint="see `airlock push --help` for the spec format",
        ) from exc
    if not spec.files:
        raise InvalidInput(f"release spec {path} lists no files", hint="add a `files:` list")
    base = path.parent
    seen: set[str] = set()
    sources: list[SourceFile] = []
    for f in spec.files:
        rel = check_relative_path(f.path)
        if rel in seen:
            raise InvalidInput(
                f"release spec {path}: duplicate file path {quoted(rel)}",
                hint="each path may appear once",
            )
        seen.add(rel)
        try:
            src = (base / f.source).resolve(strict=True)
            st = src.stat()
        except FileNotFoundError:
            raise NotFound(
                f"release spec {path}: source of {quoted(rel)} not found: "
                f"{quoted(str(base / f.source))}",
                hint="sources are relative to the spec file's folder",
            ) from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
            why = "a symbolic link loop" if isinstance(exc, RuntimeError) else exc.strerror
            raise InvalidInput(
                f"release spec {path}: cannot open the source of {quoted(rel)}: {why}",
                hint="check the source path",
            ) from None
        if not stat.S_ISREG(st.st_mode) or not os.access(src, os.R_OK):
            raise InvalidInput(
                f"release spec {path}: the source of {quoted(rel)} is not a readable file",
                hint="sources must be regular files you can read",
            )
        sources.append(SourceFile(rel, src, st.st_size, st))
    return ReleaseSpec(
        name=spec.name,
        version=spec.version,
        sources=sources,
        components=spec.components,
        parent=spec.parent,
        datasets=[dataset_from_spec(d) for d in spec.datasets],
        metrics=spec.metrics,
        notes=spec.notes,
        code=spec.code,
        training_config=spec.training_config,
    )
