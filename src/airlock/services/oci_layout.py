"""Export a release as a CNCF ModelPack OCI image layout, and import one back.

Layout on disk (OCI image-layout 1.0)::

    DIR/oci-layout             {"imageLayoutVersion": "1.0.0"}
    DIR/index.json             the image index: one manifest descriptor per exported tag
    DIR/blobs/sha256/<hex>     every blob, named by its sha256

A release file's layer is its blob unchanged (a raw layer), so the layer digest is
the file's digest. Blobs are written to a temporary file beside their final
name, fsynced and renamed; ``index.json`` is replaced last, so an interrupted
export leaves a layout that does not list a half-written image.

Import verifies every blob it reads against its digest and size. A layout
``airlock export`` wrote carries the release's canonical manifest (its digest is
the release digest): the release is stored as it is through
``Registry.import_release``, which checks every file against that manifest, so
another workspace gets the SAME release — same release digest, same author and
time (who made it) — and the ``release.import`` audit event records who
imported it, and when (as git keeps an author and a committer). Given another
``--name`` or ``--version``, or a layout from another tool, the import is a new
release made here, through ``Registry.push`` (the importer is its author).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airlock.core import modelpack as mp
from airlock.core.digest import Digest, hex_of, short
from airlock.core.limits import quoted
from airlock.core.manifest import Manifest, manifest_from_json
from airlock.core.names import check_name
from airlock.core.semver import Version
from airlock.errors import Conflict, IntegrityError, InvalidInput, NotFound
from airlock.services.identity import Actor
from airlock.services.ingest import SourceFile
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

ProgressFn = Callable[[int], None]
StartFn = Callable[[int], None]
_CHUNK = 4 << 20
MAX_DOCUMENT = 16 << 20  # index, image manifest, config or Airlock manifest blob


@dataclass(frozen=True, slots=True)
class ExportResult:
    ref: str
    release_digest: Digest
    dest: Path
    tag: str
    image_digest: Digest  # the OCI image manifest's digest
    layers: int
    bytes_total: int
    bytes_written: int  # blobs the layout did not hold yet


@dataclass(frozen=True, slots=True)
class ImportResult:
    ref: str
    digest: Digest
    created: bool  # False: this workspace already held the release (nothing to do)
    files: int
    bytes_total: int
    source_ref: str | None  # the release the layout was exported from (Airlock layouts)
    source_digest: Digest | None
    image_digest: Digest
    author: str = ""  # the release's author (kept from the export when it is the same release)

    @property
    def same_release(self) -> bool:
        """The release digest is the exported one (always so when it was already here)."""
        return self.source_digest is not None and self.source_digest == self.digest


# -- export ---------------------------------------------------------------------------------
def export_oci(
    ws: Workspace,
    ref: str,
    dest: Path,
    *,
    tag: str | None = None,
    family: str | None = None,
    on_start: StartFn | None = None,
    on_bytes: ProgressFn | None = None,
) -> ExportResult:
    """Write release ``ref`` into the OCI image layout ``dest`` (created, or added to)."""
    reg = Registry(ws)
    row = reg.checked(ref)
    manifest = row.manifest()
    manifest_json = ws.store.read(row.digest)  # the exact bytes hashed to the release digest
    _check_exportable(manifest)
    tag = mp.check_tag(tag or manifest.version)
    image = mp.build_image(manifest, manifest_json, family=family)
    existing_index = _prepare_dest(dest)
    if existing_index is not None:
        clash = [
            e
            for e in mp.tagged(mp.parse_index(existing_index), tag)
            if e.digest != image.manifest.descriptor.digest
        ]
        if clash:
            raise Conflict(
                f"{dest} already holds another image tagged {quoted(tag)} ({short(clash[0].digest)})",
                hint="give another --tag, or export into a new folder",
            )
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    unique = {d.digest: d.size for d in image.file_layers}
    if on_start is not None:
        on_start(sum(unique.values()))
    written = 0
    for digest, size in unique.items():
        target = blobs / hex_of(digest)
        if _present(target, size):
            if on_bytes is not None:
                on_bytes(size)
            continue
        _copy_blob(ws, digest, target, on_bytes)
        written += size
    for data in (manifest_json, image.config.data, image.manifest.data):
        written += _write_small(blobs, data)
    _write_atomic(dest / mp.OCI_LAYOUT_FILE, mp.layout_file())
    _write_atomic(dest / mp.INDEX_FILE, mp.index_with(existing_index, image.index_entry(tag)))
    return ExportResult(
        ref=row.ref,
        release_digest=row.digest,
        dest=dest,
        tag=tag,
        image_digest=image.manifest.descriptor.digest,
        layers=len(image.file_layers) + 1,
        bytes_total=manifest.total_size,
        bytes_written=written,
    )


def _check_exportable(manifest: Manifest) -> None:
    by_digest = [role for role, c in manifest.components.items() if c.digest is not None]
    if by_digest:
        raise InvalidInput(
            f"{manifest.ref} has components stored as loose blobs ({', '.join(by_digest)}), "
            "which an OCI layout cannot carry",
            hint="push those components as files of the release (ROLE=path) or as releases",
        )


def _prepare_dest(dest: Path) -> bytes | None:
    """Check ``dest`` is new, empty or an OCI layout; return its ``index.json`` if any."""
    if dest.exists() and not dest.is_dir():
        raise Conflict(f"{dest} exists and is not a folder", hint="choose a folder for the layout")
    if not dest.exists() or not any(dest.iterdir()):
        dest.mkdir(parents=True, exist_ok=True)
        return None
    layout = dest / mp.OCI_LAYOUT_FILE
    if not layout.is_file():
        raise Conflict(
            f"{dest} is not empty and is not an OCI image layout",
            hint="export into a new or empty folder, or into an existing OCI layout",
        )
    mp.parse_layout_file(_read_document(layout, mp.OCI_LAYOUT_FILE))
    index = dest / mp.INDEX_FILE
    return _read_document(index, mp.INDEX_FILE) if index.is_file() else None


def _present(target: Path, size: int) -> bool:
    try:
        return target.stat().st_size == size
    except FileNotFoundError:
        return False


def _copy_blob(ws: Workspace, digest: Digest, target: Path, on_bytes: ProgressFn | None) -> None:
    """Copy a stored blob into the layout; the store's reader checks its digest at EOF."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with ws.store.open(digest) as reader, os.fdopen(fd, "wb") as out:
            while chunk := reader.read(_CHUNK):
                out.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except IntegrityError as exc:
        raise IntegrityError(
            f"{exc.message}; the export was stopped",
            hint="run `airlock verify` to see which releases use the damaged blob",
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_small(blobs: Path, data: bytes) -> int:
    target = blobs / hashlib.sha256(data).hexdigest()
    if _present(target, len(data)):
        return 0
    _write_atomic(target, data)
    return len(data)


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# -- import ---------------------------------------------------------------------------------
def import_oci(
    ws: Workspace,
    src: Path,
    *,
    actor: Actor,
    tag: str | None = None,
    name: str | None = None,
    version: str | None = None,
    allow_pickle: bool = False,
    on_start: StartFn | None = None,
    on_bytes: ProgressFn | None = None,
) -> ImportResult:
    """Re-create the release held in the OCI layout ``src`` (verifying every blob)."""
    if not src.is_dir():
        raise NotFound(
            f"no OCI layout at {src}", hint="give the folder `airlock export --oci` wrote"
        )
    layout = src / mp.OCI_LAYOUT_FILE
    if not layout.is_file():
        raise InvalidInput(
            f"{src} is not an OCI image layout (no {mp.OCI_LAYOUT_FILE} file)",
            hint="give the folder `airlock export --oci` or `skopeo copy ... oci:DIR` wrote",
        )
    mp.parse_layout_file(_read_document(layout, mp.OCI_LAYOUT_FILE))
    entries = mp.parse_index(_read_document(src / mp.INDEX_FILE, mp.INDEX_FILE))
    chosen = mp.pick_manifest(entries, tag)
    image = mp.parse_image_manifest(_read_blob(src, chosen.digest, chosen.size, "image manifest"))
    mp.check_layers(image)
    original, original_json = _airlock_manifest(src, image)
    described = _described(src, image)
    name, version = _name_and_version(name, version, original, described, image)
    files = image.file_layers
    if original is not None:
        _check_files_match(original, files)
    total = sum(d.size for d in files)
    if on_start is not None:
        on_start(2 * total)  # each blob is read twice: verified here, stored by the push
    for d in files:
        _verify_blob(src, d.digest, d.size, d.filepath or d.digest, on_bytes)
    reg = Registry(ws)
    if original is not None:
        _check_references(reg, original)
    # A stable place per image: the push's hash cache then knows these paths next time
    # (no re-read of verified blobs, and no new cache entry per import).
    staging = ws.cache_dir / "oci-import" / hex_of(chosen.digest)
    try:
        sources = _link_sources(src, staging, files)
        if original is not None and (name, version) == (original.name, original.version):
            result = reg.import_release(
                original_json,
                sources,
                actor=actor,
                expected_digest=image.airlock_layer.digest if image.airlock_layer else None,
                source=str(src),
                allow_pickle=allow_pickle,
                on_bytes=on_bytes,
            )
        elif original is not None:  # renamed: a new release of the same content
            result = reg.push(
                sources,
                name=name,
                version=version,
                actor=actor,
                notes=original.notes,
                datasets=original.lineage.datasets,
                components={
                    role: c.path or c.ref or c.digest or ""
                    for role, c in original.components.items()
                },
                parent=original.lineage.parent,
                metrics=original.metrics,
                code=original.lineage.code,
                training_config=original.lineage.training_config,
                allow_pickle=allow_pickle,
                on_bytes=on_bytes,
            )
        else:
            result = reg.push(
                sources,
                name=name,
                version=version,
                actor=actor,
                allow_pickle=allow_pickle,
                on_bytes=on_bytes,
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportResult(
        ref=result.ref,
        digest=result.digest,
        created=result.created,
        files=result.files,
        bytes_total=result.bytes_total,
        source_ref=original.ref if original is not None else None,
        source_digest=original.digest() if original is not None else None,
        image_digest=chosen.digest,
        author=result.manifest.author,
    )


def _airlock_manifest(src: Path, image: mp.ParsedImage) -> tuple[Manifest | None, bytes]:
    """The exported release's manifest and its exact bytes (None, b"": not an Airlock layout)."""
    layer = image.airlock_layer
    if layer is None:
        return None, b""
    data = _read_blob(src, layer.digest, layer.size, "Airlock manifest layer")
    manifest = manifest_from_json(data)
    if manifest.canonical() != data:
        raise IntegrityError(
            "the Airlock manifest layer is not a canonical manifest: it was edited",
            hint="export the release again",
        )
    return manifest, data


def _described(src: Path, image: mp.ParsedImage) -> mp.ModelDescriptor:
    if image.config.media_type != mp.MEDIA_TYPE_MODEL_CONFIG:
        return mp.ModelDescriptor()
    return mp.parse_model_config(
        _read_blob(src, image.config.digest, image.config.size, "model config")
    )


def _name_and_version(
    name: str | None,
    version: str | None,
    original: Manifest | None,
    described: mp.ModelDescriptor,
    image: mp.ParsedImage,
) -> tuple[str, str]:
    found_name = name or (original.name if original else None) or described.name
    found_name = found_name or image.annotations.get(mp.ANNOTATION_TITLE)
    found_version = version or (original.version if original else None) or described.version
    found_version = found_version or image.annotations.get(mp.ANNOTATION_VERSION)
    if not found_name or not found_version:
        missing = " and ".join(
            w for w, v in (("name", found_name), ("version", found_version)) if not v
        )
        raise InvalidInput(
            f"the OCI layout does not say the model's {missing}",
            hint="give --name NAME and --version X.Y.Z",
        )
    try:
        check_name(found_name)
    except InvalidInput as exc:
        raise InvalidInput(
            f"the layout names the model {quoted(found_name)}, not a valid Airlock model name",
            hint=f"give --name (e.g. {quoted(_suggest_name(found_name))})",
        ) from exc
    try:
        found_version = str(Version.parse(found_version))
    except InvalidInput as exc:
        raise InvalidInput(
            f"the layout's version {quoted(found_version)} is not a semantic version",
            hint="give --version X.Y.Z",
        ) from exc
    return found_name, found_version


def _suggest_name(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._") or "model"


def _check_files_match(original: Manifest, layers: tuple[mp.Descriptor, ...]) -> None:
    listed = {(f.path, f.digest, f.size) for f in original.files}
    found = {(d.filepath, d.digest, d.size) for d in layers}
    if listed != found:
        odd = sorted(str(p) for p, _, _ in listed ^ found)
        raise IntegrityError(
            f"the layers do not match the files of {original.ref}: "
            f"{', '.join(quoted(p, 60) for p in odd[:5])}",
            hint="the layout was changed after the export: export the release again",
        )


def _check_references(reg: Registry, manifest: Manifest) -> None:
    """The parent and component releases the manifest names must be here already."""
    named = [("parent", manifest.lineage.parent)] + [
        (f"component {role}", c.ref) for role, c in manifest.components.items()
    ]
    for what, ref in named:
        if ref is None:
            continue
        try:
            reg.resolve(ref)
        except NotFound:
            raise NotFound(
                f"{manifest.ref} names {ref} as its {what}, and {ref} is not in this workspace",
                hint=f"import {ref} first (`airlock export {ref} --oci DIR` where it lives)",
            ) from None


def _link_sources(src: Path, staging: Path, layers: tuple[mp.Descriptor, ...]) -> list[SourceFile]:
    """Each layer blob under its release path (a symbolic link), so formats are recognised."""
    sources: list[SourceFile] = []
    for d in layers:
        assert d.filepath is not None  # check_layers made sure
        link = staging / d.filepath
        link.parent.mkdir(parents=True, exist_ok=True)
        target = _blob_path(src, d.digest).resolve()
        with contextlib.suppress(FileNotFoundError):
            if link.is_symlink() and Path(os.readlink(link)) != target:
                link.unlink()  # left by an import of the same image from another folder
        if not link.is_symlink():
            link.symlink_to(target)
        sources.append(SourceFile(d.filepath, link, d.size, link.stat()))
    return sources


def _blob_path(src: Path, digest: Digest) -> Path:
    return src / "blobs" / "sha256" / hex_of(digest)


def _read_document(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT:
            raise InvalidInput(f"{what} is {size} bytes: too large for an OCI document")
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(
            f"the OCI layout has no {what}", hint="the folder is incomplete: export it again"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_blob(src: Path, digest: Digest, size: int, what: str) -> bytes:
    if size > MAX_DOCUMENT:
        raise InvalidInput(f"the {what} is {size} bytes: too large for a JSON document")
    path = _blob_path(src, digest)
    data = _read_document(path, f"{what} blob {short(digest)}")
    _check_bytes(hashlib.sha256(data).hexdigest(), len(data), digest, size, what)
    return data


def _verify_blob(
    src: Path, digest: Digest, size: int, what: str, on_bytes: ProgressFn | None
) -> None:
    path = _blob_path(src, digest)
    h = hashlib.sha256()
    seen = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                seen += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    except FileNotFoundError:
        raise IntegrityError(
            f"the OCI layout lacks the blob of {quoted(what)} ({short(digest)})",
            hint="the folder is incomplete: copy or export it again",
        ) from None
    _check_bytes(h.hexdigest(), seen, digest, size, quoted(what))


def _check_bytes(actual_hex: str, actual_size: int, digest: Digest, size: int, what: str) -> None:
    if f"sha256:{actual_hex}" != digest or actual_size != size:
        raise IntegrityError(
            f"{what} in the OCI layout is damaged: {actual_size} bytes hashing to "
            f"{short('sha256:' + actual_hex)}, expected {size} bytes {short(digest)}",
            hint="the layout was changed or damaged: copy or export it again",
        )
