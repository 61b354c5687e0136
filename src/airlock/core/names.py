"""Names of models, aliases and services, and relative file paths inside a release."""

from __future__ import annotations

import re

from airlock.core import limits
from airlock.core.limits import MAX_PATH, quoted
from airlock.core.semver import is_semver
from airlock.errors import InvalidInput

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_NAME = limits.MAX_NAME


def check_name(name: str, what: str = "model name") -> str:
    if not _NAME_RE.match(name) or len(name) > MAX_NAME:
        too_long = f" (at most {MAX_NAME} characters)" if len(name) > MAX_NAME else ""
        raise InvalidInput(
            f"invalid {what}: {quoted(name)}{too_long}",
            hint="use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def check_alias(alias: str) -> str:
    check_name(alias, "alias name")
    if is_semver(alias) or alias == "latest":
        raise InvalidInput(
            f"invalid alias name: {quoted(alias)} is reserved",
            hint="an alias cannot look like a version or be 'latest'; try 'production' or 'stable'",
        )
    return alias


def _is_utf8(text: str) -> bool:
    """False for names the OS gave as undecodable bytes (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_relative_path(path: str) -> str:
    """A relative POSIX path that stays inside its release folder."""
    problem = None
    if not path:
        problem = "is empty"
    elif len(path) > MAX_PATH:
        problem = f"is {len(path)} characters long (at most {MAX_PATH})"
    elif "\x00" in path:
        problem = "contains a NUL byte"
    elif not _is_utf8(path):
        problem = "is not valid UTF-8 (rename the file)"

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
            f"invalid file path {quoted(path)}: it {problem}",
            hint="file paths must be relative POSIX paths inside the release folder",
        )
    return path
