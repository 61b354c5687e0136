"""Names of models, aliases and services, and relative file paths inside a release."""

from __future__ import annotations

import re

from airlock.core.semver import is_semver
from airlock.errors import InvalidInput

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_NAME = 128


def check_name(name: str, what: str = "model name") -> str:
    if not _NAME_RE.match(name) or len(name) > MAX_NAME:
        shown = name if len(name) <= MAX_NAME else name[:MAX_NAME] + "…"
        raise InvalidInput(
            f"invalid {what}: {shown!r}"
            + (f" ({len(name)} characters)" if len(name) > MAX_NAME else ""),
            hint="use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def check_alias(alias: str) -> str:
    check_name(alias, "alias name")
    if is_semver(alias) or alias == "latest":
        raise InvalidInput(
            f"invalid alias name: {alias!r} is reserved",
            hint="an alias cannot look like a version or be 'latest'; try 'production' or 'stable'",
        )
    return alias


def check_relative_path(path: str) -> str:
    """A relative POSIX path that stays inside its release folder."""
    problem = None
    if not path:
        problem = "is empty"
    elif "\x00" in path:
        problem = "contains a NUL byte"
    elif "\\" in path:
        problem = "contains a backslash (use '/' as the separator)"
    elif path.startswith("/"):
        problem = "is absolute"
    elif re.match(r"^[A-Za-z]:", path):
        problem = "starts with a drive letter"
    else:
        parts = path.split("/")
        if any(p == ".." for p in parts):
            problem = "contains '..'"
        elif any(p in ("", ".") for p in parts):
            problem = "has an empty or '.' segment"
    if problem:
        raise InvalidInput(
            f"invalid file path {path!r}: it {problem}",
            hint="file paths must be relative POSIX paths inside the release folder",
        )
    return path
