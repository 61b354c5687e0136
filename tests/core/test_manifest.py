from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.digest import canonical_json, digest_bytes
from airlock.core.manifest import Component, FileEntry, Manifest, manifest_from_json
from airlock.errors import InvalidInput

D1 = digest_bytes(b"one")
D2 = digest_bytes(b"two")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make(**kw: object) -> Manifest:
    base: dict[str, object] = {
        "name": "chat",
        "version": "1.0.0",
        "files": (FileEntry(path="a.safetensors", digest=D1, size=3),),
        "created_at": NOW,
    }
    base.update(kw)
    return Manifest.model_validate(base)


def test_digest_is_sha256_of_canonical_json() -> None:
    m = make()
    assert m.digest() == digest_bytes(canonical_json(m.to_json_dict()))
    assert b" " not in m.canonical().replace(b"model", b"")  # no insignificant whitespace
    assert m.canonical() == make().canonical()


def test_canonical_json_sorts_keys_and_keeps_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_content_key_ignores_author_and_time_only() -> None:
    a = make(author="alice")
    b = make(author="bob", created_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert a.digest() != b.digest()
    assert a.content_key() == b.content_key()
    c = make(metrics={"acc": 0.5})
    assert c.content_key() != a.content_key()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../evil", "'..'"),
        ("a/../../b", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a//b", "empty"),
        ("./a", "'.'"),
        ("C:/x", "drive"),
    ],
)
def test_bad_paths_are_rejected(path: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        manifest_from_json(
            {
                "name": "chat",
                "version": "1.0.0",
                "files": [{"path": path, "digest": D1, "size": 1}],
                "created_at": NOW.isoformat(),
            }
        )


def test_duplicate_paths_are_rejected() -> None:
    f = {"path": "a.bin", "digest": D1, "size": 1}
    with pytest.raises(InvalidInput, match="duplicate file path"):
        manifest_from_json(
            {"name": "chat", "version": "1.0.0", "files": [f, f], "created_at": NOW.isoformat()}
        )


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", ""])
def test_bad_semver_is_rejected(version: str) -> None:
    with pytest.raises(InvalidInput, match="semantic version"):
        manifest_from_json({"name": "chat", "version": version, "created_at": NOW.isoformat()})


@pytest.mark.parametrize("name", ["Chat", "-x", "a b", "é", ""])
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidInput):
        manifest_from_json({"name": name, "version": "1.0.0", "created_at": NOW.isoformat()})


def test_component_names_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Component(ref="base@1.0.0", digest=D2)
    with pytest.raises(InvalidInput, match="not a file of this release"):
        manifest_from_json(
            {
                "name": "chat",
                "version": "1.0.0",
                "components": {"tokenizer": {"path": "tok.json"}},
                "created_at": NOW.isoformat(),
            }
        )


def test_round_trip_through_json() -> None:
    m = make(components={"base_model": Component(ref="base@2.0.0")}, metrics={"acc": 0.9})
    again = manifest_from_json(m.canonical())
    assert again == m
    assert again.digest() == m.digest()


@given(st.binary(max_size=256), st.binary(max_size=256))
def test_same_bytes_same_digest(a: bytes, b: bytes) -> None:
    assert (digest_bytes(a) == digest_bytes(b)) == (a == b)
