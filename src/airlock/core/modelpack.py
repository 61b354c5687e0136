"""CNCF ModelPack documents for a release: the model config, the image manifest, the index.

Pure: values in, JSON bytes out, and back. The I/O (blobs on disk, the
catalog) lives in ``services/oci_layout.py``.

An exported release is one OCI image manifest (``artifactType``
``application/vnd.cncf.model.manifest.v1+json``) in an OCI image layout:

- the config blob (``application/vnd.cncf.model.config.v1+json``): descriptor
  (name, version, family, authors, creation time, description, source,
  revision, datasets), config (format, paramSize, precision, quantization) and
  modelfs (the layers' DiffIDs: raw layers, so each is the layer's digest);
- one **raw** layer per release file, the file's bytes unchanged, so a layer's
  digest is the file's sha256; its path in ``org.cncf.model.filepath``;
- one more layer holding Airlock's canonical manifest (lineage, notes, metrics,
  components...), the exact bytes whose sha256 is the release digest, marked
  with the ``io.airlock.content: manifest`` annotation.

Parsing checks every field it reads and raises ``InvalidInput`` naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from airlock.core.digest import Digest, canonical_json, digest_bytes, parse_digest
from airlock.core.limits import quoted
from airlock.core.manifest import FileEntry, Manifest
from airlock.core.names import check_relative_path
from airlock.errors import InvalidInput

# -- OCI image spec -------------------------------------------------------------------
OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_VERSION = "1.0.0"
INDEX_FILE = "index.json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_VERSION = "org.opencontainers.image.version"
ANNOTATION_DESCRIPTION = "org.opencontainers.image.description"
ANNOTATION_AUTHORS = "org.opencontainers.image.authors"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_SOURCE = "org.opencontainers.image.source"

# -- CNCF ModelPack (modelpack/model-spec, specs-go/v1) -------------------------------
ARTIFACT_TYPE_MODEL = "application/vnd.cncf.model.manifest.v1+json"
MEDIA_TYPE_MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
MEDIA_TYPE_WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
MEDIA_TYPE_WEIGHT_CONFIG_RAW = "application/vnd.cncf.model.weight.config.v1.raw"
MEDIA_TYPE_DOC_RAW = "application/vnd.cncf.model.doc.v1.raw"
MEDIA_TYPE_CODE_RAW = "application/vnd.cncf.model.code.v1.raw"
MEDIA_TYPE_DATASET_RAW = "application/vnd.cncf.model.dataset.v1.raw"
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_MEDIATYPE_UNTESTED = "org.cncf.model.file.mediatype.untested"

# -- Airlock's own annotations ----------------------------------------------------------
ANNOTATION_AIRLOCK_CONTENT = "io.airlock.content"  # "manifest" on the manifest layer
ANNOTATION_AIRLOCK_RELEASE = "io.airlock.release"  # name@version
ANNOTATION_AIRLOCK_DIGEST = "io.airlock.release.digest"
AIRLOCK_MANIFEST_PATH = ".airlock/manifest.json"

# A file's layer type. Weights are recognised by their header (FileEntry.format) or name;
# the rest by name, so they carry the "untested" annotation the spec defines for guesses.
_WEIGHT_SUFFIXES = frozenset(
    {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack", ".npz"}
)
_DOC_NAMES = frozenset({"readme", "license", "licence", "notice", "model_card", "copying"})
_DOC_SUFFIXES = frozenset({".md", ".markdown", ".rst", ".pdf", ".html"})
_CODE_SUFFIXES = frozenset({".py", ".sh", ".ipynb", ".js", ".ts", ".go", ".rs", ".c", ".cpp"})
_DATASET_SUFFIXES = frozenset({".jsonl", ".parquet", ".csv", ".tsv", ".arrow"})
_RAW_TYPES = frozenset(
    {
        MEDIA_TYPE_WEIGHT_RAW,
        MEDIA_TYPE_WEIGHT_CONFIG_RAW,
        MEDIA_TYPE_DOC_RAW,
        MEDIA_TYPE_CODE_RAW,
        MEDIA_TYPE_DATASET_RAW,
    }
)

# safetensors / GGUF dtype names -> the spec's precision names.
_PRECISIONS = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3",
    "F8_E5M2": "float8_e5m2",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U8": "uint8",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "BOOL": "bool",
}
_FORMATS = {"safetensors": "safetensors", "gguf": "gguf", "pickle": "pt"}
_REF_NAME_RE = re.compile(
    r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$"
)
_TYPEFLAG_REGULAR = ord("0")
_FILE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @property
    def filepath(self) -> str | None:
        return self.annotations.get(ANNOTATION_FILEPATH)


@dataclass(frozen=True, slots=True)
class Blob:
    """A small JSON document to write into the layout: its bytes and its descriptor."""

    descriptor: Descriptor
    data: bytes


@dataclass(frozen=True, slots=True)
class ModelPackImage:
    """Everything one release becomes: the config and manifest blobs, and its layers."""

    config: Blob
    manifest: Blob
    file_layers: tuple[Descriptor, ...]  # one per release file, in manifest order
    airlock_layer: Descriptor  # the release's canonical manifest

    def index_entry(self, tag: str) -> Descriptor:
        """The manifest's descriptor as ``index.json`` lists it, named ``tag``."""
        d = self.manifest.descriptor
        return Descriptor(
            d.media_type,
            d.digest,
            d.size,
            {ANNOTATION_REF_NAME: tag},
            artifact_type=ARTIFACT_TYPE_MODEL,
        )


@dataclass(frozen=True, slots=True)
class ParsedImage:
    """An image manifest read back: its config, layers and annotations."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]
    artifact_type: str | None

    @property
    def airlock_layer(self) -> Descriptor | None:
        return next(
            (d for d in self.layers if d.annotations.get(ANNOTATION_AIRLOCK_CONTENT) == "manifest"),
            None,
        )

    @property
    def file_layers(self) -> tuple[Descriptor, ...]:
        marked = self.airlock_layer
        return tuple(d for d in self.layers if d is not marked)


@dataclass(frozen=True, slots=True)
class ModelDescriptor:
    """What the importer needs from a ModelPack config's ``descriptor`` (all optional)."""

    name: str | None = None
    version: str | None = None
    family: str | None = None
    diff_ids: tuple[Digest, ...] = ()


# -- building ---------------------------------------------------------------------------
def layer_media_type(entry: FileEntry) -> tuple[str, bool]:
    """The ModelPack raw layer type of a release file, and whether it was only guessed."""
    path = PurePosixPath(entry.path)
    suffix = path.suffix.lower()
    if entry.format is not None and entry.format.kind != "other":
        return MEDIA_TYPE_WEIGHT_RAW, False
    if suffix in _WEIGHT_SUFFIXES:
        return MEDIA_TYPE_WEIGHT_RAW, True
    if path.stem.lower() in _DOC_NAMES or suffix in _DOC_SUFFIXES:
        return MEDIA_TYPE_DOC_RAW, True
    if suffix in _CODE_SUFFIXES:
        return MEDIA_TYPE_CODE_RAW, True
    if suffix in _DATASET_SUFFIXES:
        return MEDIA_TYPE_DATASET_RAW, True
    return MEDIA_TYPE_WEIGHT_CONFIG_RAW, True  # tokenizer.json, config.json, templates...


def param_size(parameters: int | None) -> str | None:
    """``<count><scale>`` with at most one decimal, e.g. 6.7B, 125M, 300K; None below 1K."""
    if not parameters or parameters < 1000:
        return None
    for scale, size in (("Q", 10**15), ("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if parameters >= size:
            count = f"{parameters / size:.1f}".removesuffix(".0")
            return f"{count}{scale}"
    return None  # pragma: no cover - every value >= 1000 matched above


def _precision_and_quantization(manifest: Manifest) -> tuple[str | None, str | None]:
    floats: list[str] = []
    quantized: list[str] = []
    for f in manifest.files:
        if f.format is None:
            continue
        for dtype in f.format.dtypes:
            name = _PRECISIONS.get(dtype.upper())
            if name is not None:
                floats.append(name)
            else:
                quantized.append(dtype.lower())
    precision = ",".join(dict.fromkeys(floats)) or None
    quantization = ",".join(dict.fromkeys(quantized)) or None
    return precision, quantization


def _rfc3339(manifest: Manifest) -> str:
    return manifest.created_at.isoformat().replace("+00:00", "Z")


def model_config(
    manifest: Manifest, *, family: str | None, diff_ids: Sequence[Digest]
) -> dict[str, Any]:
    """The ModelPack config document (``application/vnd.cncf.model.config.v1+json``)."""
    descriptor: dict[str, Any] = {
        "createdAt": _rfc3339(manifest),
        "authors": [manifest.author],
        "name": manifest.name,
        "version": manifest.version,
    }
    architectures = [
        f.format.architecture for f in manifest.files if f.format and f.format.architecture
    ]
    family = family or (architectures[0] if architectures else None)
    if family:
        descriptor["family"] = family
    if manifest.notes.summary:
        descriptor["description"] = manifest.notes.summary
    code = manifest.lineage.code
    if code is not None and code.repo:
        descriptor["sourceURL"] = code.repo
    if code is not None and code.commit:
        descriptor["revision"] = code.commit
    uris = [d.uri for d in manifest.lineage.datasets if d.uri]
    if uris:
        descriptor["datasetsURL"] = uris
    config: dict[str, Any] = {}
    kinds = [f.format.kind for f in manifest.files if f.format and f.format.kind in _FORMATS]
    if kinds:
        config["format"] = _FORMATS[kinds[0]]
    size = param_size(manifest.parameters)
    if size:
        config["paramSize"] = size
    precision, quantization = _precision_and_quantization(manifest)
    if precision:
        config["precision"] = precision
    if quantization:
        config["quantization"] = quantization
    return {
        "descriptor": descriptor,
        "config": config,
        "modelfs": {"type": "layers", "diffIds": list(diff_ids)},
    }


def file_layer(entry: FileEntry, created_at: str) -> Descriptor:
    media_type, guessed = layer_media_type(entry)
    metadata = {
        "name": entry.path,
        "mode": _FILE_MODE,
        "uid": 0,
        "gid": 0,
        "size": entry.size,
        "mtime": created_at,
        "typeflag": _TYPEFLAG_REGULAR,
    }
    annotations = {
        ANNOTATION_FILEPATH: entry.path,
        ANNOTATION_FILE_METADATA: json.dumps(metadata, sort_keys=True, separators=(",", ":")),
    }
    if guessed:
        annotations[ANNOTATION_MEDIATYPE_UNTESTED] = "true"
    return Descriptor(media_type, entry.digest, entry.size, annotations)


def build_image(
    manifest: Manifest, manifest_json: bytes, *, family: str | None = None
) -> ModelPackImage:
    """The config, the image manifest and the layers of one release.

    ``manifest_json`` is the release's stored canonical manifest; its digest must be
    the release digest (the caller read it verified).
    """
    release_digest = digest_bytes(manifest_json)
    created = _rfc3339(manifest)
    files = tuple(file_layer(f, created) for f in manifest.files)
    airlock = Descriptor(
        MEDIA_TYPE_DOC_RAW,
        release_digest,
        len(manifest_json),
        {
            ANNOTATION_FILEPATH: AIRLOCK_MANIFEST_PATH,
            ANNOTATION_AIRLOCK_CONTENT: "manifest",
            ANNOTATION_AIRLOCK_RELEASE: manifest.ref,
            ANNOTATION_AIRLOCK_DIGEST: release_digest,
        },
    )
    layers = (*files, airlock)
    config_bytes = canonical_json(
        model_config(manifest, family=family, diff_ids=[d.digest for d in layers])
    )
    config = Descriptor(MEDIA_TYPE_MODEL_CONFIG, digest_bytes(config_bytes), len(config_bytes))
    annotations = {
        ANNOTATION_CREATED: created,
        ANNOTATION_TITLE: manifest.name,
        ANNOTATION_VERSION: manifest.version,
        ANNOTATION_AUTHORS: manifest.author,
        ANNOTATION_AIRLOCK_RELEASE: manifest.ref,
        ANNOTATION_AIRLOCK_DIGEST: release_digest,
    }
    if manifest.notes.summary:
        annotations[ANNOTATION_DESCRIPTION] = manifest.notes.summary[:1000]
    code = manifest.lineage.code
    if code is not None and code.commit:
        annotations[ANNOTATION_REVISION] = code.commit
    if code is not None and code.repo:
        annotations[ANNOTATION_SOURCE] = code.repo
    image = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": ARTIFACT_TYPE_MODEL,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
        "annotations": annotations,
    }
    image_bytes = canonical_json(image)
    image_desc = Descriptor(
        MEDIA_TYPE_MANIFEST, digest_bytes(image_bytes), len(image_bytes), {}, ARTIFACT_TYPE_MODEL
    )
    return ModelPackImage(Blob(config, config_bytes), Blob(image_desc, image_bytes), files, airlock)


def check_tag(tag: str) -> str:
    """An ``org.opencontainers.image.ref.name`` value (the OCI image-layout grammar)."""
    if len(tag) > 256 or not _REF_NAME_RE.match(tag):
        raise InvalidInput(
            f"invalid OCI tag {quoted(tag)}",
            hint="use letters, digits and '.', '_', '-' between them, e.g. 1.2.0 or chat-1.2.0",
        )
    return tag


def layout_file() -> bytes:
    return canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION})


def index_with(existing: bytes | None, entry: Descriptor) -> bytes:
    """``index.json`` listing ``entry`` (added to ``existing``'s manifests, if any).

    A tag names one manifest: naming another one already tagged so is a ``Conflict``
    the caller raises (see :func:`tagged`); an identical entry is not listed twice.
    """
    manifests: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if existing is not None:
        doc = _json_object(existing, INDEX_FILE)
        manifests = [m for m in _list(doc, "manifests", INDEX_FILE) if isinstance(m, dict)]
        extra = {
            k: v for k, v in doc.items() if k not in {"schemaVersion", "mediaType", "manifests"}
        }
    tag = entry.annotations.get(ANNOTATION_REF_NAME)
    manifests = [
        m for m in manifests if not (m.get("digest") == entry.digest and _ref_name(m) == tag)
    ]
    manifests.append(entry.to_json())
    return canonical_json(
        {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, **extra, "manifests": manifests}
    )


def _ref_name(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    if isinstance(annotations, dict):
        value = annotations.get(ANNOTATION_REF_NAME)
        return value if isinstance(value, str) else None
    return None


# -- parsing ----------------------------------------------------------------------------
def parse_layout_file(data: bytes) -> str:
    doc = _json_object(data, OCI_LAYOUT_FILE)
    version = doc.get("imageLayoutVersion")
    if not isinstance(version, str):
        raise InvalidInput(
            f"{OCI_LAYOUT_FILE} has no imageLayoutVersion",
            hint="the folder is not an OCI image layout",
        )
    if version.split(".")[0] != "1":
        raise InvalidInput(f"unsupported OCI image layout version {quoted(version)}")
    return version


def parse_index(data: bytes) -> tuple[Descriptor, ...]:
    """The manifests ``index.json`` lists."""
    doc = _json_object(data, INDEX_FILE)
    if doc.get("schemaVersion") != 2:
        raise InvalidInput(f"{INDEX_FILE}: schemaVersion must be 2")
    return tuple(
        _descriptor(m, f"{INDEX_FILE} manifests[{i}]")
        for i, m in enumerate(_list(doc, "manifests", INDEX_FILE))
    )


def tagged(entries: Sequence[Descriptor], tag: str) -> list[Descriptor]:
    return [e for e in entries if e.annotations.get(ANNOTATION_REF_NAME) == tag]


def pick_manifest(entries: Sequence[Descriptor], tag: str | None) -> Descriptor:
    """The image manifest to import: the one tagged ``tag``, or the only one."""
    images = [e for e in entries if e.media_type == MEDIA_TYPE_MANIFEST]
    tags = sorted({t for e in images if (t := e.annotations.get(ANNOTATION_REF_NAME))})
    if tag is not None:
        found = tagged(images, tag)
        if not found:
            raise InvalidInput(
                f"the OCI layout has no image tagged {quoted(tag)}",
                hint=f"tags in it: {', '.join(tags) or 'none'}",
            )
        return found[-1]
    if not images:
        nested = any(e.media_type == MEDIA_TYPE_INDEX for e in entries)
        raise InvalidInput(
            "the OCI layout lists no image manifest"
            + (" (only nested indexes, which are not supported)" if nested else ""),
            hint="export the model as one OCI image manifest",
        )
    if len({e.digest for e in images}) > 1:
        raise InvalidInput(
            f"the OCI layout holds {len(images)} images: say which one",
            hint=f"add --tag with one of: {', '.join(tags) or '(none are tagged)'}",
        )
    return images[0]


def parse_image_manifest(data: bytes) -> ParsedImage:
    doc = _json_object(data, "image manifest")
    if doc.get("schemaVersion") != 2:
        raise InvalidInput("image manifest: schemaVersion must be 2")
    media_type = doc.get("mediaType", MEDIA_TYPE_MANIFEST)
    if media_type != MEDIA_TYPE_MANIFEST:
        raise InvalidInput(
            f"image manifest: media type {quoted(media_type)} is not {MEDIA_TYPE_MANIFEST}"
        )
    config = doc.get("config")
    if not isinstance(config, dict):
        raise InvalidInput("image manifest: no config descriptor")
    layers = tuple(
        _descriptor(d, f"image manifest layers[{i}]")
        for i, d in enumerate(_list(doc, "layers", "image manifest"))
    )
    artifact_type = doc.get("artifactType")
    return ParsedImage(
        config=_descriptor(config, "image manifest config"),
        layers=layers,
        annotations=_annotations(doc.get("annotations"), "image manifest"),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )


def check_layers(image: ParsedImage) -> None:
    """Every file layer is raw (not tar) and names a safe relative path, once."""
    seen: set[str] = set()
    for d in image.file_layers:
        path = d.filepath
        if path is None:
            raise InvalidInput(
                f"layer {d.digest} has no {ANNOTATION_FILEPATH} annotation",
                hint="each layer must say which file it is",
            )
        if d.media_type not in _RAW_TYPES:
            raise InvalidInput(
                f"layer {quoted(path)} has media type {quoted(d.media_type)}: only raw "
                "(unarchived) ModelPack layers can be imported",
                hint="re-pack the model with raw layers (e.g. modctl build --raw)",
            )
        check_relative_path(path)
        if path in seen:
            raise InvalidInput(f"two layers name the same file {quoted(path)}")
        seen.add(path)


def parse_model_config(data: bytes) -> ModelDescriptor:
    doc = _json_object(data, "model config")
    descriptor = doc.get("descriptor", {})
    if not isinstance(descriptor, dict):
        raise InvalidInput("model config: descriptor must be an object")
    modelfs = doc.get("modelfs", {})
    if not isinstance(modelfs, dict):
        raise InvalidInput("model config: modelfs must be an object")
    diff_ids = tuple(parse_digest(str(d)) for d in modelfs.get("diffIds", []) if isinstance(d, str))

    def text(key: str) -> str | None:
        value = descriptor.get(key)
        return value if isinstance(value, str) and value else None

    return ModelDescriptor(text("name"), text("version"), text("family"), diff_ids)


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {str(exc)[:120]}",
            hint="the OCI layout is damaged or not an OCI layout",
        ) from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


def _list(doc: dict[str, Any], key: str, what: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InvalidInput(f"{what}: {key} must be a list")
    return value


def _annotations(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(f"{what}: annotations must map strings to strings")
    return dict(value)


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} is not a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidInput(f"{what}: mediaType is missing")
    if not isinstance(digest, str):
        raise InvalidInput(f"{what}: digest is missing")
    if not digest.startswith("sha256:"):
        raise InvalidInput(
            f"{what}: digest {quoted(digest)} is not sha256",
            hint="only sha256 digests are supported",
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{what}: size must be a non-negative integer")
    artifact_type = value.get("artifactType")
    return Descriptor(
        media_type,
        parse_digest(digest),
        size,
        _annotations(value.get("annotations"), what),
        artifact_type if isinstance(artifact_type, str) else None,
    )
