"""ModelPack documents from plain values: the config, the image manifest, the index, parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from airlock.core import modelpack as mp
from airlock.core.digest import digest_bytes
from airlock.core.manifest import CodeRef, FileEntry, FileFormat, Lineage, Manifest, Notes
from airlock.errors import InvalidInput

WEIGHTS = digest_bytes(b"weights")
TOKENIZER = digest_bytes(b"{}")


def manifest() -> Manifest:
    return Manifest(
        name="chat",
        version="1.2.0",
        files=(
            FileEntry(
                path="model.gguf",
                digest=WEIGHTS,
                size=7,
                format=FileFormat(
                    kind="gguf",
                    parameters=6_700_000_000,
                    dtypes={"F32": 2, "Q4_K": 10},
                    architecture="llama",
                ),
            ),
            FileEntry(path="tokenizer.json", digest=TOKENIZER, size=2),
        ),
        lineage=Lineage(code=CodeRef(repo="https://git.example/chat", commit="abc123")),
        notes=Notes(summary="A chat model."),
        author="alice",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def test_config_carries_family_format_size_precision_and_diff_ids() -> None:
    m = manifest()
    image = mp.build_image(m, m.canonical())
    config = json.loads(image.config.data)
    assert config["descriptor"] == {
        "createdAt": "2026-01-02T03:04:05Z",
        "authors": ["alice"],
        "name": "chat",
        "version": "1.2.0",
        "family": "llama",
        "description": "A chat model.",
        "sourceURL": "https://git.example/chat",
        "revision": "abc123",
    }
    assert config["config"] == {
        "format": "gguf",
        "paramSize": "6.7B",
        "precision": "float32",
        "quantization": "q4_k",
    }
    assert config["modelfs"] == {"type": "layers", "diffIds": [WEIGHTS, TOKENIZER, m.digest()]}


def test_image_manifest_uses_the_modelpack_media_types_and_raw_layers() -> None:
    m = manifest()
    image = mp.build_image(m, m.canonical(), family="llama3")
    doc = json.loads(image.manifest.data)
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    assert image.manifest.descriptor.digest == digest_bytes(image.manifest.data)
    weights, tokenizer, airlock = doc["layers"]
    assert weights["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert weights["digest"] == WEIGHTS and weights["size"] == 7
    assert weights["annotations"]["org.cncf.model.filepath"] == "model.gguf"
    assert "org.cncf.model.file.mediatype.untested" not in weights["annotations"]
    meta = json.loads(weights["annotations"]["org.cncf.model.file.metadata+json"])
    assert meta == {
        "name": "model.gguf",
        "mode": 0o644,
        "uid": 0,
        "gid": 0,
        "size": 7,
        "mtime": "2026-01-02T03:04:05Z",
        "typeflag": ord("0"),
    }
    assert tokenizer["mediaType"] == "application/vnd.cncf.model.weight.config.v1.raw"
    assert tokenizer["annotations"]["org.cncf.model.file.mediatype.untested"] == "true"
    assert airlock["digest"] == m.digest()
    assert airlock["annotations"]["io.airlock.content"] == "manifest"
    assert json.loads(image.config.data)["descriptor"]["family"] == "llama3"
    # The same release always gives the same bytes (so the same image digest).
    assert mp.build_image(m, m.canonical(), family="llama3") == image


def test_parse_round_trip_and_index_merge() -> None:
    m = manifest()
    image = mp.build_image(m, m.canonical())
    parsed = mp.parse_image_manifest(image.manifest.data)
    mp.check_layers(parsed)
    assert parsed.airlock_layer is not None and parsed.airlock_layer.digest == m.digest()
    assert [d.filepath for d in parsed.file_layers] == ["model.gguf", "tokenizer.json"]
    index = mp.index_with(None, image.index_entry("1.2.0"))
    again = mp.index_with(index, image.index_entry("1.2.0"))  # not listed twice
    other = mp.index_with(again, image.index_entry("latest"))
    entries = mp.parse_index(other)
    assert len(mp.parse_index(again)) == 1 and len(entries) == 2
    assert mp.pick_manifest(entries, "latest").digest == image.manifest.descriptor.digest
    described = mp.parse_model_config(image.config.data)
    assert (described.name, described.version, described.family) == ("chat", "1.2.0", "llama")


@pytest.mark.parametrize(
    ("count", "text"),
    [(999, None), (1000, "1K"), (125_000_000, "125M"), (6_740_000_000, "6.7B"), (10**12, "1T")],
)
def test_param_size(count: int, text: str | None) -> None:
    assert mp.param_size(count) == text


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "index.json is not valid JSON"),
        (b"[]", "index.json must be a JSON object"),
        (b'{"schemaVersion": 1, "manifests": []}', "schemaVersion must be 2"),
        (b'{"schemaVersion": 2}', "manifests must be a list"),
        (
            b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "md5:ab", "size": 1}]}',
            "is not sha256",
        ),
        (
            b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:ab", "size": -1}]}',
            "size must be a non-negative integer",
        ),
    ],
)
def test_bad_index_is_a_clear_error(document: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        mp.parse_index(document)


def test_layers_must_be_raw_with_safe_distinct_paths() -> None:
    def image(*layers: dict[str, object]) -> mp.ParsedImage:
        doc = {
            "schemaVersion": 2,
            "config": {"mediaType": mp.MEDIA_TYPE_MODEL_CONFIG, "digest": WEIGHTS, "size": 1},
            "layers": list(layers),
        }
        return mp.parse_image_manifest(json.dumps(doc).encode())

    def layer(path: str | None, media_type: str = mp.MEDIA_TYPE_WEIGHT_RAW) -> dict[str, object]:
        notes = {mp.ANNOTATION_FILEPATH: path} if path is not None else {}
        return {"mediaType": media_type, "digest": WEIGHTS, "size": 7, "annotations": notes}

    with pytest.raises(InvalidInput, match="only raw"):
        mp.check_layers(image(layer("w.bin", "application/vnd.cncf.model.weight.v1.tar")))
    with pytest.raises(InvalidInput, match=r"no org\.cncf\.model\.filepath"):
        mp.check_layers(image(layer(None)))
    with pytest.raises(InvalidInput, match=r"outside|\.\."):
        mp.check_layers(image(layer("../etc/passwd")))
    with pytest.raises(InvalidInput, match="two layers name the same file"):
        mp.check_layers(image(layer("a.bin"), layer("a.bin")))


def test_tags_follow_the_oci_grammar() -> None:
    assert mp.check_tag("chat-1.2.0") == "chat-1.2.0"
    for bad in ("", "-x", "a b", "a/../b", "x" * 300):
        with pytest.raises(InvalidInput, match="invalid OCI tag"):
            mp.check_tag(bad)
