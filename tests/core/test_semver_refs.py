from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.names import check_alias
from airlock.core.refs import parse_ref
from airlock.core.semver import Version
from airlock.errors import InvalidInput


def test_semver_order_follows_the_spec() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]  # fmt: skip
    parsed = [Version.parse(v) for v in ordered]
    shuffled = parsed[3:] + parsed[:3]
    assert sorted(shuffled) == parsed
    assert str(Version.parse("1.2.3-rc.1+build.5")) == "1.2.3-rc.1+build.5"


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_semver_round_trips(a: int, b: int, c: int) -> None:
    v = Version.parse(f"{a}.{b}.{c}")
    assert Version.parse(str(v)) == v


@pytest.mark.parametrize(
    ("text", "kind", "name", "selector"),
    [
        ("chat@1.2.0", "version", "chat", "1.2.0"),
        ("chat@production", "alias", "chat", "production"),
        ("chat", "latest", "chat", None),
        ("chat@latest", "latest", "chat", None),
        ("sha256:abcdef12", "digest", None, "sha256:abcdef12"),
        ("abcdef1234567890", "digest", None, "sha256:abcdef1234567890"),
    ],
)
def test_parse_ref(text: str, kind: str, name: str | None, selector: str | None) -> None:
    ref = parse_ref(text)
    assert (ref.kind, ref.name, ref.selector) == (kind, name, selector)


@pytest.mark.parametrize("text", ["", "Chat@1.0.0", "chat@1.2", "sha256:xyz", "chat@Prod"])
def test_bad_refs(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ref(text)


@pytest.mark.parametrize("alias", ["1.0.0", "latest", "Prod"])
def test_reserved_or_bad_alias_names(alias: str) -> None:
    with pytest.raises(InvalidInput):
        check_alias(alias)
