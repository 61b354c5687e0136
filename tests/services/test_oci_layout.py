"""OCI ModelPack export and import on real workspaces, checked by a tool Airlock did not write.

``skopeo`` (Debian's package; ``.ci/run`` installs it) reads the layout Airlock writes and
copies it into a second layout, which Airlock imports back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.config import Settings
from airlock.core import modelpack as mp
from airlock.core.digest import canonical_json, digest_bytes
from airlock.core.manifest import CodeRef, Dataset, Notes
from airlock.errors import Conflict, IntegrityError, InvalidInput, NotFound
from airlock.services.identity import Actor
from airlock.services.oci_layout import export_oci, import_oci
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

MakeModel = Callable[..., Path]


def skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        reason = "skopeo is not installed (apt-get install skopeo; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    with Workspace.open(sqlite_settings, create=True) as w:
        yield w


@pytest.fixture
def other_ws(tmp_path: Path) -> Iterator[Workspace]:
    settings = Settings(home=tmp_path / "elsewhere" / ".airlock", user="bob")
    with Workspace.open(settings, create=True) as w:
        yield w


def push_release(ws: Workspace, alice: Actor, make_model: MakeModel) -> Registry:
    reg = Registry(ws)
    v1 = make_model(seed=1, **{"README.md": "# chat", "tokenizer.json": "{}"})
    reg.push(v1, name="chat", version="1.0.0", actor=alice)
    v2 = make_model(seed=2, **{"README.md": "# chat 1.1", "tokenizer.json": "{}"})
    reg.push(
        v2,
        name="chat",
        version="1.1.0",
        actor=alice,
        parent="chat@1.0.0",
        metrics={"accuracy": 0.81},
        notes=Notes(summary="Better answers.", caveats=("English only",)),
        datasets=[Dataset(name="tickets", uri="s3://data/tickets.jsonl")],
        code=CodeRef(repo="https://git.example/chat", commit="abc123"),
        training_config={"lr": 0.0002, "epochs": 3},
    )
    return reg


def test_export_is_a_modelpack_layout_skopeo_reads_and_copies(
    ws: Workspace, other_ws: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    tool = skopeo()
    reg = push_release(ws, alice, make_model)
    release = reg.show("chat@1.1.0")
    out = tmp_path / "oci"
    result = export_oci(ws, "chat@1.1.0", out)
    assert result.tag == "1.1.0" and result.release_digest == release.row.digest

    raw = subprocess.run(
        [tool, "inspect", "--raw", f"oci:{out}:1.1.0"], check=True, capture_output=True
    ).stdout
    image = json.loads(raw)
    assert digest_bytes(raw) == result.image_digest
    assert image["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert image["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    by_path = {layer["annotations"]["org.cncf.model.filepath"]: layer for layer in image["layers"]}
    for f in release.manifest.files:  # each file a raw layer whose digest is the file's
        assert by_path[f.path]["digest"] == f.digest and by_path[f.path]["size"] == f.size
    weights = by_path["model-00000-of-00002.safetensors"]
    assert weights["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert by_path["README.md"]["mediaType"] == "application/vnd.cncf.model.doc.v1.raw"
    assert by_path[".airlock/manifest.json"]["digest"] == release.row.digest
    config = json.loads(
        subprocess.run(
            [tool, "inspect", "--config", "--raw", f"oci:{out}:1.1.0"],
            check=True,
            capture_output=True,
        ).stdout
    )
    assert config["descriptor"]["name"] == "chat" and config["descriptor"]["version"] == "1.1.0"
    assert config["config"]["format"] == "safetensors"
    assert config["config"]["precision"] == "float16,float32"
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in image["layers"]]

    copy = tmp_path / "copied"
    subprocess.run(
        [tool, "copy", "--quiet", f"oci:{out}:1.1.0", f"oci:{copy}:1.1.0"],
        check=True,
        capture_output=True,
    )
    # Into the workspace it came from: the very same release, nothing new.
    same = import_oci(ws, copy, actor=alice)
    assert not same.created and same.digest == release.row.digest and same.same_release
    # Into another workspace: the parent first, then the release, identical in content.
    export_oci(ws, "chat@1.0.0", out)
    bob = Actor("bob")
    with pytest.raises(NotFound, match=r"chat@1\.0\.0 is not in this workspace"):
        import_oci(other_ws, copy, actor=bob)
    import_oci(other_ws, out, actor=bob, tag="1.0.0")
    there = import_oci(other_ws, copy, actor=bob)
    assert there.created and there.source_digest == release.row.digest
    assert there.digest == release.row.digest and there.same_release  # the same release
    theirs = Registry(other_ws).show("chat@1.1.0").manifest
    assert theirs.content_key() == release.manifest.content_key()
    assert theirs.files == release.manifest.files
    assert theirs.lineage == release.manifest.lineage
    assert theirs.metrics == release.manifest.metrics and theirs.notes == release.manifest.notes
    assert Registry(other_ws).verify().ok


def test_layout_with_several_images_and_its_tags(
    ws: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    push_release(ws, alice, make_model)
    out = tmp_path / "oci"
    first = export_oci(ws, "chat@1.0.0", out)
    second = export_oci(ws, "chat@1.1.0", out)
    again = export_oci(ws, "chat@1.1.0", out)  # the same image under the same tag: a no-op
    assert again.bytes_written == 0 and again.image_digest == second.image_digest
    entries = mp.parse_index((out / "index.json").read_bytes())
    assert [e.digest for e in entries] == [first.image_digest, second.image_digest]
    with pytest.raises(Conflict, match=r"another image tagged '1\.0\.0'"):
        export_oci(ws, "chat@1.1.0", out, tag="1.0.0")
    with pytest.raises(InvalidInput, match="holds 2 images"):
        import_oci(ws, out, actor=alice)
    assert import_oci(ws, out, actor=alice, tag="1.0.0").ref == "chat@1.0.0"
    with pytest.raises(InvalidInput, match="no image tagged 'nope'"):
        import_oci(ws, out, actor=alice, tag="nope")


def test_a_damaged_or_incomplete_layout_imports_nothing(
    ws: Workspace, other_ws: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    reg = push_release(ws, alice, make_model)
    out = tmp_path / "oci"
    export_oci(ws, "chat@1.0.0", out)
    shard = reg.show("chat@1.0.0").manifest.files[-1]
    blob = out / "blobs" / "sha256" / shard.digest.split(":")[1]
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="damaged"):
        import_oci(other_ws, out, actor=alice)
    blob.unlink()
    with pytest.raises(IntegrityError, match="lacks the blob"):
        import_oci(other_ws, out, actor=alice)
    assert Registry(other_ws).models() == []
    assert list(other_ws.store.digests()) == []


def test_export_refuses_a_folder_that_is_not_a_layout(
    ws: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    push_release(ws, alice, make_model)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(Conflict, match="not an OCI image layout"):
        export_oci(ws, "chat@1.0.0", busy)
    with pytest.raises(NotFound):
        export_oci(ws, "chat@9.9.9", tmp_path / "x")
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def write_foreign_layout(folder: Path, files: dict[str, bytes], descriptor: dict[str, str]) -> None:
    """A ModelPack layout as another tool writes it: no Airlock layer, raw layers."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = digest_bytes(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    layers = [
        {
            "mediaType": "application/vnd.cncf.model.weight.v1.raw",
            "digest": put(data),
            "size": len(data),
            "annotations": {"org.cncf.model.filepath": path},
        }
        for path, data in files.items()
    ]
    config = json.dumps(
        {
            "descriptor": descriptor,
            "config": {"format": "gguf"},
            "modelfs": {"type": "layers", "diffIds": [layer["digest"] for layer in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.cncf.model.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v3"},
            }
        ],
    }
    (folder / "index.json").write_bytes(canonical_json(index))
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def test_a_layout_written_by_another_tool_imports_its_files(
    ws: Workspace, alice: Actor, tmp_path: Path
) -> None:
    files = {"weights/model.bin.txt": b"not really weights", "config.json": b'{"hidden": 8}'}
    named = tmp_path / "named"
    write_foreign_layout(named, files, {"name": "xyz", "version": "3.1.0"})
    result = import_oci(ws, named, actor=alice)
    assert result.created and result.ref == "xyz@3.1.0" and result.source_digest is None
    manifest = Registry(ws).show("xyz@3.1.0").manifest
    assert {f.path: f.digest for f in manifest.files} == {
        p: digest_bytes(d) for p, d in files.items()
    }

    unnamed = tmp_path / "unnamed"
    write_foreign_layout(unnamed, files, {"name": "XYZ 3 Instruct", "version": "3.1"})
    with pytest.raises(InvalidInput, match="not a valid Airlock model name") as bad_name:
        import_oci(ws, unnamed, actor=alice)
    assert "--name" in bad_name.value.hint
    with pytest.raises(InvalidInput, match="not a semantic version"):
        import_oci(ws, unnamed, actor=alice, name="xyz-instruct")
    done = import_oci(ws, unnamed, actor=alice, name="xyz-instruct", version="3.1.0")
    assert done.ref == "xyz-instruct@3.1.0"

    bare = tmp_path / "bare"
    write_foreign_layout(bare, files, {})
    with pytest.raises(InvalidInput, match="does not say the model's name and version"):
        import_oci(ws, bare, actor=alice)
    with pytest.raises(InvalidInput, match="not an OCI image layout"):
        import_oci(ws, tmp_path, actor=alice)
