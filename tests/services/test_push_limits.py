"""Text the catalog stores is bounded the same on SQLite and PostgreSQL: a value too long
for its column is one clear InvalidInput on both, never a database error, and the catalog
is left as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import InvalidInput
from airlock.services.identity import Actor
from airlock.services.registry import Registry

MakeModel = Callable[..., Path]


def _deep_file(folder: Path) -> None:
    deep = folder.joinpath(*(["d" * 250] * 5))
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("deep")  # a release path of 1,260 characters


TOO_LONG: dict[str, tuple[dict[str, Any], str]] = {
    "version of 200 characters": ({"version": "1.0.0-" + "a" * 194}, "at most 128 characters"),
    "model name of 200 characters": ({"name": "m" * 200}, "at most 128 characters"),
    "metric name of 300 characters": ({"metrics": {"m" * 300: 1.0}}, "at most 128 characters"),
    "component role of 200 characters": (
        {"components": {"r" * 200: "config.json"}},
        "at most 128 characters",
    ),
    "path of 1,260 characters": ({"deep": True}, "at most 1024"),
}


@pytest.mark.parametrize("case", list(TOO_LONG))
def test_too_long_is_refused_alike_on_both_catalogs(
    case: str, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    given, expect = TOO_LONG[case]
    folder = make_model()
    kwargs: dict[str, Any] = {"name": "chat", "version": "1.0.0", **given}
    if kwargs.pop("deep", False):
        _deep_file(folder)
    with pytest.raises(InvalidInput) as caught:
        registry.push(folder, actor=alice, **kwargs)
    assert expect in caught.value.message
    assert len(caught.value.message) < 400  # the long value is quoted, not echoed whole
    assert registry.models() == []
    # the catalog is usable after the refusal
    assert registry.push(make_model(), name="chat", version="1.0.0", actor=alice).created


def test_alias_names_and_reasons_are_bounded(
    registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    registry.push(make_model(), name="chat", version="1.0.0", actor=alice)
    with pytest.raises(InvalidInput, match="at most 128 characters"):
        registry.set_alias("a" * 300, "chat@1.0.0", actor=alice, reason="go")
    with pytest.raises(InvalidInput, match="at most 4096 are allowed"):
        registry.set_alias("production", "chat@1.0.0", actor=alice, reason="r" * 5000)
    assert registry.aliases("chat") == []
    assert registry.set_alias("production", "chat@1.0.0", actor=alice, reason="go").moved


def test_a_dataset_uri_too_long_for_its_column_cannot_be_made() -> None:
    from pydantic import ValidationError

    from airlock.core.manifest import Dataset

    with pytest.raises(ValidationError, match="at most 2048 characters"):
        Dataset(name="d", uri="s3://b/" + "x" * 3000)
