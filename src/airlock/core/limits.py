"""Maximum lengths of the text a release carries, and quoting that never echoes too much.

The sizes match the catalog's columns (``catalog/schema.py``), so a value that
passes here fits on SQLite (which would store anything) and on PostgreSQL
(which refuses a longer value with a database error) alike. Fields kept only
inside the manifest's JSON have limits too, generous ones, so one release
cannot carry megabytes of prose.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Any

from airlock.errors import InvalidInput

# Sizes of catalog columns.
MAX_NAME = 128  # models.name, aliases.name, components.role, releases.author
MAX_VERSION = 128  # releases.version
MAX_PATH = 1024  # release_files.path, components.target
MAX_MEDIA_TYPE = 128  # release_files.media_type
MAX_REF = 256  # lineage.parent_ref: name@version
MAX_DATASET_NAME = 256  # datasets.name
MAX_URI = 2048  # datasets.uri
MAX_CODE_REPO = 1024  # lineage.code_repo
MAX_CODE_COMMIT = 128  # lineage.code_commit

# Fields kept in the manifest's JSON (Text columns): generous, but bounded.
MAX_REASON = 4096  # an alias move's reason
MAX_NOTE_TEXT = 65_536  # notes.summary, notes.risk_assessment
MAX_NOTE_ITEM = 8192  # one entry of changes, caveats, known failure modes
MAX_NOTE_ITEMS = 1000
MAX_METRIC_NAME = 128
MAX_CONFIG_NODES = 100_000  # training_config: values, counted with repeats
MAX_CONFIG_DEPTH = 64

QUOTE_LIMIT = 80


def quoted(text: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of at most ``limit`` characters of ``text``: errors never echo unbounded input."""
    s = str(text)
    if len(s) <= limit:
        return repr(s)
    return repr(s[:limit]) + f"… ({len(s)} characters)"


def check_length(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise InvalidInput(
            f"{what} is {len(value)} characters long, at most {limit} are allowed: {quoted(value)}",
            hint=f"shorten the {what}",
        )
    return value


def collision_key(path: str) -> str:
    """Paths with equal keys name the same file on a case-insensitive or normalising filesystem."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_distinct_paths(paths: Iterable[str]) -> None:
    """Refuse paths with control characters, and two paths that differ only by Unicode
    normalisation or by case (checked on new releases; old manifests are read as they are)."""
    seen: dict[str, str] = {}
    for path in paths:
        if _CONTROL_RE.search(path):
            raise InvalidInput(
                f"file path {quoted(path)} contains a control character (a newline, a tab...)",
                hint="rename the file",
            )
        key = collision_key(path)
        other = seen.get(key)
        if other is not None and other != path:
            how = (
                "differ only by Unicode normalisation"
                if unicodedata.normalize("NFC", other) == unicodedata.normalize("NFC", path)
                else "differ only by case"
            )
            raise InvalidInput(
                f"file paths {quoted(other)} and {quoted(path)} {how}: they would overwrite "
                "each other on macOS, Windows and many other filesystems",
                hint="rename one of them",
            )
        seen.setdefault(key, path)


def check_json_value(value: Any, what: str, *, strict: bool = True) -> None:
    """A JSON document of bounded size: str keys, finite numbers, no sets or bytes.

    Nodes are counted with repeats, so a YAML document that repeats one anchor
    a billion times (an alias bomb) is refused without being expanded. With
    ``strict=False`` only the size and depth are checked.
    """
    budget = MAX_CONFIG_NODES
    stack: list[tuple[Any, str, int]] = [(value, what, 0)]
    while stack:
        node, where, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise InvalidInput(
                f"{_at(what)} is too large: more than {MAX_CONFIG_NODES} values once aliases are "
                "expanded",
                hint="simplify it, or do not repeat YAML anchors (&name / *name) so often",
            )
        if depth > MAX_CONFIG_DEPTH:
            raise InvalidInput(
                f"{_at(what)} nests more than {MAX_CONFIG_DEPTH} levels deep",
                hint="flatten it",
            )
        if node is None or isinstance(node, (bool, str, date)):
            continue  # YAML dates become ISO strings in the manifest
        if not strict:
            if isinstance(node, dict):
                stack.extend((v, where, depth + 1) for v in node.values())
            elif isinstance(node, (list, tuple, set)):
                stack.extend((v, where, depth + 1) for v in node)
            continue
        if isinstance(node, int):
            if abs(node) >= 2**63:
                raise InvalidInput(f"{_at(where)}: integer too large for JSON", hint=_JSON_HINT)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidInput(f"{_at(where)}: {node} is not a finite number", hint=_JSON_HINT)
        elif isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise InvalidInput(
                        f"{_at(where)}: key {quoted(k, 40)} is not a string", hint=_JSON_HINT
                    )
                stack.append((v, f"{where}.{k}", depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node))
        else:
            raise InvalidInput(
                f"{_at(where)}: a {type(node).__name__} is not a JSON value",
                hint=_JSON_HINT,
            )


_JSON_HINT = "use strings, finite numbers, booleans, null, lists and mappings only"


def _at(where: str) -> str:
    return where.lstrip(".")[:120] or "the document"
