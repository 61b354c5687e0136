"""Read what a push is told besides its files: notes, datasets, components, metrics."""

from __future__ import annotations

import json
import math
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from airlock.core import limits
from airlock.core.digest import Digest, canonical_json, digest_bytes, parse_digest
from airlock.core.documents import validation_message
from airlock.core.limits import quoted
from airlock.core.manifest import CodeRef, Dataset, Notes
from airlock.core.names import check_name
from airlock.errors import InvalidInput

MAX_DOCUMENT_BYTES = 4 << 20  # a notes, spec or training-config file (PyYAML reads ~1 MB/s)

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
        raise InvalidInput(
            f"invalid {what} {quoted(text)}", hint=f"write it as NAME=VALUE, e.g. {what}"
        )
    return key.strip(), value.strip()


def read_text_file(path: Path, what: str) -> str:
    """A small UTF-8 file; every way it can fail is one ``InvalidInput`` naming it."""
    try:
        st = path.stat()
        size = st.st_size
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(
                f"{what} file {path} is not a regular file",
                hint=f"give a {what} file (YAML, JSON or text)",
            )
        if size > MAX_DOCUMENT_BYTES:
            raise InvalidInput(
                f"{what} file {path} is {size} bytes, at most {MAX_DOCUMENT_BYTES} are read",
                hint=f"a {what} file is a small YAML/JSON/text document",
            )
        return path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what} file not found: {path}", hint="check the path") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{what} file {path} is not UTF-8 text ({exc.reason})",
            hint="save it as UTF-8 (YAML, JSON, Markdown or plain text)",
        ) from exc
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the {what} file {path}: {exc.strerror or exc}",
            hint="give a readable file",
        ) from exc


_FIX_SYNTAX = "fix the syntax (a YAML or JSON document; .json files are read as JSON)"


def _syntax_error(exc: json.JSONDecodeError | yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own text spans several lines)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or exc.context or "invalid"
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{what[:200]}{where}"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def load_structured(path: Path, what: str) -> Any:
    """JSON or YAML from a file, with an error that names the file.

    The document is bounded: at most 4 MiB, and at most 100,000 values once
    YAML aliases are expanded, so an alias bomb ("billion laughs") is refused
    before anything walks or serialises it.
    """
    text = read_text_file(path, what)
    try:
        value = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"{what} file {path} is not valid JSON/YAML: {_syntax_error(exc)}", hint=_FIX_SYNTAX
        ) from exc
    except (RecursionError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise InvalidInput(
            f"{what} file {path} is not valid JSON/YAML: {reason}", hint=_FIX_SYNTAX
        ) from exc
    try:
        limits.check_json_value(value, "")
    except InvalidInput as exc:
        raise InvalidInput(
            f"{what} file {path}: {exc.message}",
            hint=exc.hint or "use strings, finite numbers, booleans, lists and mappings",
        ) from exc
    return value


def read_notes(path: Path) -> Notes:
    """Notes from YAML/JSON (fields of ``Notes``) or Markdown/text (the summary)."""
    if path.suffix.lower() in {".md", ".txt", ".markdown"}:
        data: Any = {"summary": read_text_file(path, "notes").strip()}
    else:
        data = load_structured(path, "notes")
    if not isinstance(data, dict):
        raise InvalidInput(
            f"notes file {path} must hold a mapping of fields",
            hint=f"use: {', '.join(Notes.model_fields)}",
        )
    known = set(Notes.model_fields)
    unknown = set(data) - known
    if unknown:
        raise InvalidInput(
            f"notes file {path} has unknown field(s): "
            f"{', '.join(quoted(u, 40) for u in sorted(map(str, unknown))[:5])}",
            hint=f"use: {', '.join(sorted(known))}",
        )
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return Notes.model_validate(fixed)
    except ValidationError as exc:
        raise InvalidInput(
            f"notes file {path}: {validation_message(exc, 'notes')}",
            hint="summary and risk_assessment are text; changes, caveats and "
            "known_failure_modes are lists of text",
        ) from exc


_DIGEST_LIKE = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")


def dataset_from_spec(text: str) -> Dataset:
    """``NAME=PATH`` (hashed here; only the digest is kept), ``NAME=sha256:…`` or ``NAME=URI``."""
    name, value = split_pair(text, "--dataset name=path-or-digest")
    check_name(name.lower(), "dataset name")
    limits.check_length(value, limits.MAX_URI, f"dataset {name!r} location")
    if _DIGEST_LIKE.match(value):
        return Dataset(name=name, digest=parse_digest(value))
    path = Path(value)
    try:
        if path.exists():
            # The content is the identity: where the files sat on this machine is not part
            # of the bill of materials, so the same push from another folder is the same release.
            return Dataset(name=name, digest=digest_path(path))
    except OSError as exc:
        raise InvalidInput(
            f"dataset {name!r}: cannot read {quoted(value)}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from exc
    if "://" in value:
        return Dataset(name=name, uri=value)
    raise InvalidInput(
        f"dataset {name!r}: {quoted(value)} is neither an existing path, a digest nor a URI",
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
        limits.check_length(name, limits.MAX_METRIC_NAME, "metric name")
        try:
            number = float(value)
        except ValueError as exc:
            raise InvalidInput(
                f"metric {quoted(name)}: {quoted(value)} is not a number",
                hint="write it as NAME=NUMBER, e.g. --metric accuracy=0.81",
            ) from exc
        if not math.isfinite(number):
            raise InvalidInput(
                f"metric {quoted(name)}: {quoted(value)} is not a finite number",
                hint="metrics are finite numbers: leave a metric out rather than push nan or inf",
            )
        metrics[name] = number
    return metrics


def code_ref(repo: str | None, commit: str | None) -> CodeRef | None:
    """``--code-repo`` / ``--code-commit`` as a ``CodeRef``; None when neither is given."""
    if not repo and not commit:
        return None
    try:
        return CodeRef(repo=repo, commit=commit)
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid code reference: {validation_message(exc, 'code')}",
            hint="--code-repo is a repository URL, --code-commit a commit id",
        ) from exc


def read_training_config(path: Path) -> dict[str, Any] | None:
    """A training configuration file: a YAML/JSON mapping (None when the file is empty)."""
    value = load_structured(path, "training config")
    if value is not None and not isinstance(value, dict):
        raise InvalidInput(
            f"training config file {path} must hold a mapping, not a {type(value).__name__}",
            hint="e.g. `lr: 0.0002` and `epochs: 3`, one setting per line",
        )
    return value
