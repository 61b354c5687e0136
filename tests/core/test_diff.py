from __future__ import annotations

from datetime import UTC, datetime

from airlock.core.diff import diff_manifests, render_markdown
from airlock.core.digest import digest_bytes
from airlock.core.manifest import (
    CodeRef,
    Component,
    Dataset,
    FileEntry,
    FileFormat,
    Lineage,
    Manifest,
    Notes,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(path: str, content: bytes, params: int | None = None) -> FileEntry:
    fmt = FileFormat(kind="safetensors", parameters=params) if params else None
    return FileEntry(path=path, digest=digest_bytes(content), size=len(content), format=fmt)


def test_diff_reports_every_kind_of_change() -> None:
    old = Manifest(
        name="chat",
        version="1.0.0",
        files=(entry("w.safetensors", b"w1", 100), entry("gone.txt", b"x"), entry("same", b"s")),
        components={
            "safety_policy": Component(path="same"),
            "base_model": Component(ref="b@1.0.0"),
        },
        lineage=Lineage(
            datasets=(Dataset(name="d", digest=digest_bytes(b"d1")),), code=CodeRef(commit="abc")
        ),
        metrics={"acc": 0.5, "old": 1.0},
        notes=Notes(summary="v1"),
        created_at=NOW,
    )
    new = Manifest(
        name="chat",
        version="1.1.0",
        files=(entry("w.safetensors", b"w2", 120), entry("new.txt", b"yy"), entry("same", b"s")),
        components={
            "safety_policy": Component(path="same"),
            "base_model": Component(ref="b@2.0.0"),
        },
        lineage=Lineage(
            datasets=(Dataset(name="d", digest=digest_bytes(b"d2")),),
            code=CodeRef(commit="def"),
            parent="chat@1.0.0",
        ),
        metrics={"acc": 0.75, "new": 2.0},
        notes=Notes(summary="v2", caveats=("slow",)),
        created_at=NOW,
    )
    d = diff_manifests(old, new)
    assert d.files_added == ("new.txt",)
    assert d.files_removed == ("gone.txt",)
    assert [c.key for c in d.files_changed] == ["w.safetensors"]
    assert d.changed_roles == ("base_model",)
    assert {c.key for c in d.lineage} == {"dataset d", "code commit", "parent"}
    deltas = {m.name: m.delta for m in d.metrics}
    assert deltas == {"acc": 0.25, "new": None, "old": None}
    assert {c.key for c in d.notes} == {"summary", "caveats"}
    assert d.bytes_added == 4  # w2 + yy; "s" was already there
    assert d.parameters is not None and (d.parameters.old, d.parameters.new) == (100, 120)
    md = render_markdown(d, new)
    assert "| acc | 0.5 | 0.75 | +0.25 |" in md
    assert "- added `new.txt`" in md and "## Caveats" in md


def test_component_identity_follows_file_content() -> None:
    a = Manifest(
        name="m", version="1.0.0", files=(entry("p.yaml", b"a"),),
        components={"safety_policy": Component(path="p.yaml")}, created_at=NOW,
    )  # fmt: skip
    b = a.model_copy(update={"version": "1.0.1", "files": (entry("p.yaml", b"b"),)})
    assert diff_manifests(a, b).changed_roles == ("safety_policy",)
    assert diff_manifests(a, a).is_empty
