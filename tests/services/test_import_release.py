"""Importing a release made elsewhere keeps it the same release (Registry.import_release).

Export from workspace A, import into a fresh workspace B: the same release digest,
the same author and time, and an audit event naming the importer. A manifest or a
file that does not verify is refused, and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock import audit
from airlock.config import Settings
from airlock.core.manifest import manifest_from_json
from airlock.errors import Conflict, IntegrityError, NotFound
from airlock.services.identity import Actor
from airlock.services.ingest import scan_folder
from airlock.services.oci_layout import export_oci, import_oci
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

MakeModel = Callable[..., Path]
BOB = Actor("bob", "author")


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    with Workspace.open(sqlite_settings, create=True) as w:
        yield w


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.open(Settings(home=tmp_path / "b" / ".airlock", user="bob"), create=True) as w:
        yield w


def test_an_exported_release_imports_as_the_same_release(
    ws: Workspace, fresh: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    reg = Registry(ws)
    reg.push(make_model(seed=1), name="chat", version="1.0.0", actor=alice)
    made = reg.push(
        make_model(seed=2, **{"README.md": "# v1.1"}),
        name="chat",
        version="1.1.0",
        actor=alice,
        parent="chat@1.0.0",
        metrics={"accuracy": 0.8},
    )
    out = tmp_path / "oci"
    export_oci(ws, "chat@1.0.0", out)
    export_oci(ws, "chat@1.1.0", out)

    first = import_oci(fresh, out, actor=BOB, tag="1.0.0")
    second = import_oci(fresh, out, actor=BOB, tag="1.1.0")
    assert first.created and first.same_release
    assert second.created and second.same_release and second.digest == made.digest
    theirs = Registry(fresh)
    view = theirs.show("chat@1.1.0")  # checked against its digest and its audit event
    assert view.row.digest == made.digest and view.manifest == made.manifest
    assert view.manifest.author == "alice"  # the author stays; the importer is on the trail
    assert view.manifest.lineage.parent == "chat@1.0.0"
    assert theirs.verify().ok
    with fresh.db.read() as conn:
        events = list(audit.entries(conn, action="release.import"))
    assert [(e.actor, e.subject) for e in events] == [("bob", "chat@1.0.0"), ("bob", "chat@1.1.0")]
    assert events[1].details["digest"] == made.digest
    assert events[1].details["author"] == "alice" and events[1].details["source"] == str(out)
    with fresh.db.read() as conn:
        assert audit.verify(conn).ok

    again = import_oci(fresh, out, actor=BOB, tag="1.1.0")
    assert not again.created and again.same_release  # a no-op, no second event
    renamed = import_oci(fresh, out, actor=BOB, tag="1.1.0", version="1.1.1")
    assert renamed.created and not renamed.same_release  # a new release, made here by bob
    assert theirs.show("chat@1.1.1").manifest.author == "bob"


def _exported(ws: Workspace, alice: Actor, make_model: MakeModel) -> tuple[bytes, Path]:
    folder = make_model(seed=3)
    result = Registry(ws).push(folder, name="chat", version="2.0.0", actor=alice)
    return ws.store.read(result.digest), folder


def test_a_manifest_that_does_not_verify_is_refused(
    ws: Workspace, fresh: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    manifest_json, folder = _exported(ws, alice, make_model)
    files = scan_folder(folder)
    theirs = Registry(fresh)
    digest = manifest_from_json(manifest_json).digest()

    edited = json.loads(manifest_json)
    edited["author"] = "mallory"
    forged = manifest_from_json(edited).canonical()
    with pytest.raises(IntegrityError, match=r"hashes to .* not to the release digest"):
        theirs.import_release(forged, files, actor=BOB, expected_digest=digest)
    pretty = json.dumps(json.loads(manifest_json), indent=2).encode()
    with pytest.raises(IntegrityError, match="not in canonical form"):
        theirs.import_release(pretty, files, actor=BOB)

    changed = folder / files[0].rel
    data = changed.read_bytes()
    changed.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, other bytes
    with pytest.raises(IntegrityError, match="do not hash to the digest"):
        theirs.import_release(manifest_json, scan_folder(folder), actor=BOB)
    changed.write_bytes(data)
    with pytest.raises(IntegrityError, match=r"not those of chat@2\.0\.0"):
        theirs.import_release(manifest_json, scan_folder(folder)[1:], actor=BOB)

    assert theirs.models() == [] and list(fresh.store.digests()) == []  # nothing half-written
    assert theirs.import_release(manifest_json, files, actor=BOB, expected_digest=digest).created


def test_an_import_needs_the_releases_it_names_and_a_free_version(
    ws: Workspace, fresh: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    reg = Registry(ws)
    reg.push(make_model(seed=4), name="base", version="1.0.0", actor=alice)
    child_folder = make_model(seed=5)
    child = reg.push(child_folder, name="chat", version="1.0.0", actor=alice, parent="base@1.0.0")
    manifest_json = ws.store.read(child.digest)
    theirs = Registry(fresh)
    with pytest.raises(NotFound, match=r"names base@1\.0\.0 as its parent"):
        theirs.import_release(manifest_json, scan_folder(child_folder), actor=BOB)
    theirs.push(make_model(seed=4), name="base", version="1.0.0", actor=BOB)
    theirs.push(make_model(seed=6), name="chat", version="1.0.0", actor=BOB, parent="base@1.0.0")
    with pytest.raises(Conflict, match="already exists with different content"):
        theirs.import_release(manifest_json, scan_folder(child_folder), actor=BOB)


def test_the_importer_may_not_approve_what_they_imported(
    ws: Workspace, fresh: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    """An importer chose the manifest, its author field included: four-eyes bars them too."""
    from airlock.errors import Forbidden
    from airlock.services.governance import Governance

    Registry(ws).push(make_model(seed=1), name="chat", version="1.0.0", actor=alice)
    export_oci(ws, "chat@1.0.0", tmp_path / "oci")
    import_oci(fresh, tmp_path / "oci", actor=BOB, tag="1.0.0")
    approver = Actor("bob", "approver")  # bob holds the approver role too
    with pytest.raises(Forbidden, match=r"bob is the importer of chat@1\.0\.0"):
        Governance(fresh).approve("chat@1.0.0", stage="production", actor=approver)
    carol = Actor("carol", "approver")
    assert Governance(fresh).approve("chat@1.0.0", stage="production", actor=carol)
