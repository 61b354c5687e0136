"""Release references as users type them.

==========================  ===========================================
``chat@1.2.0``              a version
``chat@production``         an alias of model ``chat``
``chat`` / ``chat@latest``  the highest version of ``chat``
``sha256:3f2a…`` / ``3f2a…`` a release digest or a unique prefix of it
==========================  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airlock.core.digest import is_digest_prefix
from airlock.core.limits import quoted
from airlock.core.names import check_name
from airlock.core.semver import Version, is_semver
from airlock.errors import InvalidInput

RefKind = Literal["version", "alias", "latest", "digest"]


@dataclass(frozen=True, slots=True)
class ReleaseRef:
    kind: RefKind
    name: str | None = None
    selector: str | None = None  # version, alias or digest prefix

    def __str__(self) -> str:
        if self.kind == "digest":
            return str(self.selector)
        if self.kind == "latest":
            return f"{self.name}@latest"
        return f"{self.name}@{self.selector}"


def parse_ref(text: str) -> ReleaseRef:
    raw = text.strip()
    if not raw:
        raise InvalidInput(
            "empty release reference", hint="use NAME@VERSION, NAME@ALIAS or a digest"
        )
    if raw.startswith("sha256:") or ("@" not in raw and _looks_like_hex(raw)):
        if not is_digest_prefix(raw):
            raise InvalidInput(
                f"not a digest prefix: {quoted(raw)}",
                hint="give at least 4 hex characters, e.g. sha256:3f2a9c",
            )
        hexpart = raw.lower().removeprefix("sha256:")
        return ReleaseRef("digest", selector=f"sha256:{hexpart}")
    name, _, selector = raw.partition("@")
    check_name(name)
    if not selector or selector == "latest":
        return ReleaseRef("latest", name=name)
    if is_semver(selector):
        return ReleaseRef("version", name=name, selector=str(Version.parse(selector)))
    if selector[0].isdigit() and "." in selector:
        Version.parse(selector)  # raises a clear semver error for e.g. 1.2
    check_name(selector, "alias name")
    return ReleaseRef("alias", name=name, selector=selector)


def _looks_like_hex(text: str) -> bool:
    # A bare hex string of 12+ characters is read as a digest prefix; shorter
    # ones (e.g. "cafe") are treated as model names.
    return len(text) >= 12 and all(c in "0123456789abcdef" for c in text.lower())
