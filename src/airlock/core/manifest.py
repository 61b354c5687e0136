"""The manifest: a release's bill of materials, and its digest.

A manifest is a frozen pydantic model. Its canonical JSON (sorted keys, no
insignificant whitespace, UTF-8) is hashed with sha256: that digest *is* the
release's identity. ``content_key()`` is the same hash without ``author`` and
``created_at``: two pushes with equal content keys are the same release.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from airlock.core import limits
from airlock.core.digest import Digest, canonical_json, digest_bytes, parse_digest
from airlock.core.documents import validation_message
from airlock.core.names import check_name, check_relative_path
from airlock.core.semver import Version
from airlock.errors import InvalidInput

KNOWN_ROLES = (
    "base_model",
    "adapter",
    "tokenizer",
    "prompt_template",
    "decoding",
    "safety_policy",
    "retrieval_index",
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")

_T = TypeVar("_T")

FileKind = Literal["safetensors", "gguf", "pickle", "other"]

# Text bounded by the catalog column (or the manifest limit) it ends up in.
MediaType = Annotated[str, Field(max_length=limits.MAX_MEDIA_TYPE)]
RefText = Annotated[str, Field(max_length=limits.MAX_REF)]
PathText = Annotated[str, Field(max_length=limits.MAX_PATH)]
NoteText = Annotated[str, Field(max_length=limits.MAX_NOTE_TEXT)]
NoteItems = Annotated[
    tuple[Annotated[str, Field(max_length=limits.MAX_NOTE_ITEM)], ...],
    Field(max_length=limits.MAX_NOTE_ITEMS),
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileFormat(_Frozen):
    """What Airlock learned from a file's header, without loading its weights."""

    kind: FileKind
    tensor_count: int | None = None
    parameters: int | None = None
    dtypes: dict[str, int] = Field(default_factory=dict)  # dtype -> tensor count
    architecture: str | None = None
    unsafe: bool = False
    detail: str | None = None


class FileEntry(_Frozen):
    path: str
    digest: Digest
    size: int = Field(ge=0)
    media_type: MediaType = "application/octet-stream"
    format: FileFormat | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _as_value_error(check_relative_path, v)

    @field_validator("digest", mode="before")
    @classmethod
    def _digest(cls, v: str) -> Digest:
        return Digest(_as_value_error(parse_digest, v))


class Component(_Frozen):
    """A part of the release: another release (``ref``) or a blob (``digest``)."""

    ref: RefText | None = None
    digest: Digest | None = None
    path: PathText | None = None  # a file of this release holding the component

    @model_validator(mode="after")
    def _one_target(self) -> Component:
        if sum(x is not None for x in (self.ref, self.digest, self.path)) != 1:
            raise ValueError("a component names exactly one of: ref, digest, path")
        return self


class Dataset(_Frozen):
    name: Annotated[str, Field(min_length=1, max_length=limits.MAX_DATASET_NAME)]
    uri: Annotated[str, Field(max_length=limits.MAX_URI)] | None = None
    digest: Digest | None = None


class CodeRef(_Frozen):
    repo: Annotated[str, Field(max_length=limits.MAX_CODE_REPO)] | None = None
    commit: Annotated[str, Field(max_length=limits.MAX_CODE_COMMIT)] | None = None


class Lineage(_Frozen):
    datasets: tuple[Dataset, ...] = ()
    code: CodeRef | None = None
    training_config: dict[str, Any] = Field(default_factory=dict)
    parent: RefText | None = None  # a release ref, e.g. chat@1.0.0

    @field_validator("training_config")
    @classmethod
    def _json_config(cls, v: dict[str, Any]) -> dict[str, Any]:
        _as_value_error(limits.check_json_value, v, "training_config")
        return v


class Notes(_Frozen):
    summary: NoteText = ""
    changes: NoteItems = ()
    caveats: NoteItems = ()
    known_failure_modes: NoteItems = ()
    risk_assessment: NoteText = ""

    @field_validator("changes", "caveats", "known_failure_modes", mode="before")
    @classmethod
    def _one_item(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v  # `caveats: one sentence` is one caveat


ReleaseName = Annotated[str, Field(min_length=1, max_length=128)]


class Manifest(_Frozen):
    schema_version: Literal[1] = 1
    name: ReleaseName
    version: str
    files: tuple[FileEntry, ...] = ()
    components: dict[str, Component] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    metrics: dict[
        Annotated[str, Field(min_length=1, max_length=limits.MAX_METRIC_NAME)], FiniteFloat
    ] = Field(default_factory=dict)
    notes: Notes = Field(default_factory=Notes)
    author: Annotated[str, Field(max_length=limits.MAX_NAME)] = "unknown"
    created_at: datetime

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _as_value_error(check_name, v)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return str(_as_value_error(Version.parse, v))

    @field_validator("components")
    @classmethod
    def _roles(cls, v: dict[str, Component]) -> dict[str, Component]:
        for role in v:
            _as_value_error(check_name, role, "component role")
        return v

    @model_validator(mode="after")
    def _unique_paths(self) -> Manifest:
        seen: set[str] = set()
        for f in self.files:
            key = f.path
            if key in seen:
                raise ValueError(f"duplicate file path {limits.quoted(key)}")
            seen.add(key)
        for role, comp in self.components.items():
            if comp.path is not None and comp.path not in seen:
                raise ValueError(
                    f"component {limits.quoted(role)} names {limits.quoted(comp.path)}, "
                    "not a file of this release"
                )
        return self

    # -- identity -------------------------------------------------------------
    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return data

    def canonical(self) -> bytes:
        return canonical_json(self.to_json_dict())

    def digest(self) -> Digest:
        return digest_bytes(self.canonical())

    def content_key(self) -> Digest:
        data = self.to_json_dict()
        data.pop("author", None)
        data.pop("created_at", None)
        return digest_bytes(canonical_json(data))

    # -- derived facts --------------------------------------------------------
    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def has_pickle(self) -> bool:
        return any(f.format is not None and f.format.unsafe for f in self.files)

    @property
    def parameters(self) -> int | None:
        counts = [f.format.parameters for f in self.files if f.format and f.format.parameters]
        return sum(counts) if counts else None

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)


def manifest_from_json(data: bytes | str | dict[str, Any]) -> Manifest:
    """Parse and validate a manifest, turning pydantic's errors into ``InvalidInput``."""
    try:
        if isinstance(data, dict):
            return Manifest.model_validate(data)
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid manifest: {validation_message(exc, 'manifest')}") from exc


def _as_value_error(check: Callable[..., _T], *args: Any) -> _T:
    """Run an Airlock check inside a pydantic validator, which collects ValueErrors."""
    try:
        return check(*args)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc
