"""Read what a push is told besides its files: notes, datasets, components, metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from airlock.core.digest import Digest, canonical_json, digest_bytes, parse_digest
from airlock.core.manifest import Dataset, Notes
from airlock.core.names import check_name
from airlock.errors import InvalidInput

# Files that are components when a release folder holds them under these names.
WELL_KNOWN_COMPONENTS = {
    "tokenizer.json": "tokenizer",
    "prompt_template.yaml": "prompt_template",
    "prompt_template.json": "prompt_template",
    "decoding.yaml": "decoding",
    "decoding.json": "decoding",
    "safety_policy.yaml": "safety_policy",
    "safety_policy.json": "safety_policy",
    "adapter_config.json": "adapter",
}


def split_pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InvalidInput(f"invalid {what} {text!r}", hint=f"write it as NAME=VALUE, e.g. {what}")
    return key.strip(), value.strip()


def load_structured(path: Path, what: str) -> Any:
    """JSON or YAML from a file, with an error that names the file."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what} file not found: {path}") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{what} file {path} is not valid JSON/YAML: {exc}") from exc


def read_notes(path: Path) -> Notes:
    """Notes from YAML/JSON (fields of ``Notes``) or Markdown/text (the summary)."""
    if path.suffix.lower() in {".md", ".txt", ".markdown"}:
        try:
            return Notes(summary=path.read_text("utf-8").strip())
        except FileNotFoundError as exc:
            raise InvalidInput(f"notes file not found: {path}") from exc
    data = load_structured(path, "notes")
    if not isinstance(data, dict):
        raise InvalidInput(f"notes file {path} must hold a mapping of fields")
    known = set(Notes.model_fields)
    unknown = set(data) - known
    if unknown:
        raise InvalidInput(
            f"notes file {path} has unknown field(s): {', '.join(sorted(unknown))}",
            hint=f"use: {', '.join(sorted(known))}",
        )
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Notes.model_validate(fixed)


_DIGEST_LIKE = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")


def dataset_from_spec(text: str) -> Dataset:
    """``NAME=PATH`` (hashed here), ``NAME=sha256:…`` or ``NAME=URI``."""
    name, value = split_pair(text, "--dataset name=path-or-digest")
    check_name(name.lower(), "dataset name")
    if _DIGEST_LIKE.match(value):
        return Dataset(name=name, digest=parse_digest(value))
    path = Path(value)
    if path.exists():
        return Dataset(name=name, uri=f"file://{path.resolve()}", digest=digest_path(path))
    if "://" in value:
        return Dataset(name=name, uri=value)
    raise InvalidInput(
        f"dataset {name!r}: {value!r} is neither an existing path, a digest nor a URI",
        hint="give a local file or folder to hash, a sha256 digest, or a URI such as s3://...",
    )


def digest_path(path: Path) -> Digest:
    """A file's sha256; for a folder, the sha256 of its sorted (path, digest) listing."""
    import hashlib

    if path.is_file():
        with path.open("rb") as f:
            return Digest(f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}")
    listing: list[list[str]] = []
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                listing.append(
                    [p.relative_to(path).as_posix(), hashlib.file_digest(f, "sha256").hexdigest()]
                )
    return digest_bytes(canonical_json(listing))


def parse_metrics(items: Iterable[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for item in items:
        name, value = split_pair(item, "--metric name=number")
        try:
            metrics[name] = float(value)
        except ValueError as exc:
            raise InvalidInput(f"metric {name!r}: {value!r} is not a number") from exc
    return metrics
