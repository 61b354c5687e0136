"""Semantic versions (semver.org 2.0.0): parse, order, display."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from airlock.core.limits import MAX_VERSION, quoted
from airlock.errors import InvalidInput

_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def is_semver(text: str) -> bool:
    return len(text) <= MAX_VERSION and bool(_SEMVER_RE.match(text))


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        text = text.strip()
        match = _SEMVER_RE.match(text) if len(text) <= MAX_VERSION else None
        if not match:
            longer = f" (at most {MAX_VERSION} characters)" if len(text) > MAX_VERSION else ""
            raise InvalidInput(
                f"not a semantic version: {quoted(text)}{longer}",
                hint="use MAJOR.MINOR.PATCH, e.g. 1.4.0 or 2.0.0-rc.1",
            )
        major, minor, patch, pre, build = match.groups()
        return cls(
            int(major),
            int(minor),
            int(patch),
            tuple(pre.split(".")) if pre else (),
            tuple(build.split(".")) if build else (),
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release without pre-release ranks above its pre-releases; numeric
        # identifiers rank below alphanumeric ones. Build metadata is ignored.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key() and self.build == other.build

    def __hash__(self) -> int:
        return hash((self._key(), self.build))
