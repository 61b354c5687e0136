"""The registry: push, resolve, show, diff, alias moves, pull and verify.

Every mutation runs in one catalog transaction together with its audit event.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import aliases as alias_sql
from airlock.catalog import events as event_sql
from airlock.catalog import releases as release_sql
from airlock.core.digest import Digest, parse_digest, short
from airlock.core.limits import quoted
from airlock.core.names import check_name
from airlock.core.paging import Page, decode_cursor, page_limit, page_of, version_key
from airlock.core.records import Alias, AliasMove, ModelSummary, Release
from airlock.core.refs import ReleaseRef, parse_ref
from airlock.core.roles import Action
from airlock.core.semver import Version
from airlock.errors import Conflict, IntegrityError, InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.release_checks import checked_manifest, release_problem
from airlock.services.workspace import Workspace

if TYPE_CHECKING:
    from airlock.core.diff import ManifestDiff
    from airlock.core.manifest import CodeRef, Component, Dataset, FileEntry, Manifest, Notes
    from airlock.services.ingest import IngestResult, SourceFile, StoredFile
    from airlock.services.promotion import AliasResult

ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class PushResult:
    ref: str
    digest: Digest
    created: bool  # False: the same content was already this version (a no-op)
    files: int
    bytes_total: int
    bytes_read: int
    bytes_new: int
    seconds: float
    manifest: Manifest
    repaired: tuple[Digest, ...] = ()  # damaged stored blobs replaced from the pushed files


@dataclass(frozen=True, slots=True)
class _PushMeta:
    """What a push records besides its files."""

    name: str
    version: str
    actor: Actor
    notes: Notes | None
    datasets: tuple[Dataset, ...]
    components: dict[str, Component]
    parent: str | None
    metrics: dict[str, float]
    code: CodeRef | None
    training_config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReleaseView:
    row: Release
    manifest: Manifest
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    bytes: int
    damaged: dict[str, list[str]] = field(default_factory=dict)  # digest -> users
    missing: dict[str, list[str]] = field(default_factory=dict)
    tampered: dict[str, str] = field(default_factory=dict)  # release ref -> what is wrong

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing and not self.tampered


@dataclass(frozen=True, slots=True)
class PullResult:
    ref: str
    dest: Path
    files: int
    bytes: int


class Registry:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db
        self.store = workspace.store

    # -- reading ---------------------------------------------------------------
    def resolve(self, ref: str) -> Release:
        with self.db.read() as conn:
            return self._resolve(conn, ref)

    def resolve_in(self, conn: Connection, ref: str) -> Release:
        """``resolve`` on the caller's connection (inside its transaction)."""
        return self._resolve(conn, ref)

    def _resolve(self, conn: Connection, text: str) -> Release:
        ref = parse_ref(text)
        if ref.kind == "digest":
            return self._by_digest(conn, ref)
        assert ref.name is not None
        assert ref.selector is not None or ref.kind == "latest"
        # The common cases in one indexed query each; the model is looked up on a miss only.
        if ref.kind == "version" and ref.selector is not None:
            row = release_sql.by_version(conn, ref.name, ref.selector)
        elif ref.kind == "alias" and ref.selector is not None:
            row = release_sql.by_alias(conn, ref.name, ref.selector)
        else:
            row = None
        if row is not None:
            return row
        mid = release_sql.model_id(conn, ref.name)
        if mid is None:
            raise NotFound(f"no model named {ref.name!r}", hint="run `airlock ls` to list models")
        if ref.kind == "version":
            newest = release_sql.page_of_model(conn, mid, after=None, limit=8, newest_first=True)
            known = ", ".join(r.version for r in reversed(newest)) or "none"
            raise NotFound(
                f"no release {ref.name}@{ref.selector}",
                hint=f"versions of {ref.name}: {known}",
            )
        if ref.kind == "latest":
            latest = release_sql.latest(conn, mid)
            if latest is None:
                raise NotFound(f"model {ref.name!r} has no releases yet")
            return latest
        names = ", ".join(a.name for a in alias_sql.of_model(conn, mid)) or "none"
        raise NotFound(
            f"{ref.name} has no alias or version {ref.selector!r}",
            hint=f"aliases of {ref.name}: {names}",
        )

    def _by_digest(self, conn: Connection, ref: ReleaseRef) -> Release:
        assert ref.selector is not None
        rows = release_sql.by_digest_prefix(conn, ref.selector)
        if not rows:
            raise NotFound(f"no release with digest {ref.selector}")
        if len(rows) > 1:
            listed = ", ".join(f"{r.ref} ({short(r.digest)})" for r in rows)
            raise InvalidInput(
                f"digest prefix {ref.selector} is ambiguous: {listed}",
                hint="give more characters of the digest",
            )
        return rows[0]

    def show(self, ref: str) -> ReleaseView:
        """The release, after checking its row is what was pushed (IntegrityError if not)."""
        with self.db.read() as conn:
            row = self._resolve(conn, ref)
            manifest = checked_manifest(conn, row)
            mid = release_sql.model_id(conn, row.model)
            names = tuple(a.name for a in alias_sql.of_model(conn, mid) if a.release_id == row.id)
        return ReleaseView(row, manifest, names)

    def manifest(self, ref: str) -> Manifest:
        """The release's manifest, checked against its digest and its push event."""
        with self.db.read() as conn:
            return checked_manifest(conn, self._resolve(conn, ref))

    def checked(self, ref: str) -> Release:
        """``resolve``, then check the row is what was pushed (IntegrityError if not)."""
        with self.db.read() as conn:
            row = self._resolve(conn, ref)
            checked_manifest(conn, row)
            return row

    def models(self) -> list[ModelSummary]:
        with self.db.read() as conn:
            return release_sql.list_models(conn)

    def releases(self, model: str) -> list[Release]:
        with self.db.read() as conn:
            if release_sql.model_id(conn, model) is None:
                raise NotFound(f"no model named {model!r}")
            rows = release_sql.of_model(conn, model)
        return sorted(rows, key=lambda r: Version.parse(r.version))

    def model_page(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ModelSummary]:
        """One page of models by name (keyset: the name of the last one handed out)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        name = str(after[0]) if after else None
        with self.db.read() as conn:
            rows = release_sql.page_models(conn, after=name, limit=size + 1)
        return page_of(rows, size, lambda m: [m.name])

    def release_page(
        self,
        model: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> Page[Release]:
        """One page of a model's releases, oldest version first (or newest first); keyset on
        the version key and id of the last one handed out: as fast on the last page as on
        the first."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=2)
        key = (str(after[0]), int(after[1])) if after else None
        with self.db.read() as conn:
            mid = release_sql.model_id(conn, model)
            if mid is None:
                raise NotFound(f"no model named {model!r}", hint="run `airlock ls` to list models")
            rows = release_sql.page_of_model(
                conn, mid, after=key, limit=size + 1, newest_first=newest_first
            )
        return page_of(rows, size, lambda r: [version_key(r.version), r.id])

    def alias_history_page(
        self,
        model: str | None = None,
        alias: str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> Page[AliasMove]:
        """One page of alias moves, oldest first or newest first (keyset on the row id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        with self.db.read() as conn:
            rows = alias_sql.history_page(
                conn,
                model=model,
                alias=alias,
                after_id=int(after[0]) if after else None,
                limit=size + 1,
                newest_first=newest_first,
            )
        page = page_of(rows, size, lambda r: [r[0]])
        return page.map(lambda r: r[1])

    def aliases(self, model: str | None = None) -> list[Alias]:
        with self.db.read() as conn:
            mid = None
            if model is not None:
                mid = release_sql.model_id(conn, model)
                if mid is None:
                    raise NotFound(f"no model named {model!r}")
            return alias_sql.of_model(conn, mid)

    def diff(self, old: str, new: str) -> tuple[ManifestDiff, Manifest, Manifest]:
        from airlock.core.diff import diff_manifests

        a, b = self.manifest(old), self.manifest(new)
        return diff_manifests(a, b), a, b

    # -- pushing -----------------------------------------------------------------
    def push(
        self,
        path: Path | Sequence[SourceFile],
        *,
        name: str,
        version: str,
        actor: Actor,
        notes: Notes | None = None,
        datasets: Sequence[Dataset] = (),
        components: Mapping[str, str] | None = None,
        parent: str | None = None,
        metrics: Mapping[str, float] | None = None,
        code: CodeRef | None = None,
        training_config: Mapping[str, Any] | None = None,
        allow_pickle: bool = False,
        repair: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> PushResult:
        """Store a folder, one file, or listed source files as release ``name@version``.

        Everything that can be checked is checked before a byte is stored; if
        the push fails after storing, the blobs it added are removed again.
        A stored blob found damaged is replaced from the pushed file, with a
        ``store.repair`` event: always when its size is wrong; after a re-hash
        with ``repair``, or when the push repeats an existing release (the
        "nothing to do" case, where the user may be re-pushing to repair).
        """
        # Imported here: reading commands (`airlock ls`, `show`) need none of the ingest path.
        from airlock.services.hashcache import HashCache
        from airlock.services.ingest import check_sources, inspect_formats, scan_folder, store_files

        started = time.perf_counter()
        check_name(name)
        version = str(Version.parse(version))
        authorize(self.db, actor, Action.RELEASE_PUSH, f"{name}@{version}")
        files = scan_folder(path) if isinstance(path, Path) else list(path)
        check_sources(files)
        formats = inspect_formats(files, allow_pickle=allow_pickle)
        comps, parent_ref = self._push_context({f.rel for f in files}, components, parent)
        if on_start is not None:
            on_start(sum(f.size for f in files))
        cache = HashCache(self.ws.cache_dir / "hashes.json")
        ingest = store_files(
            self.store,
            files,
            formats,
            workers=self.ws.settings.worker_count,
            cache=cache,
            on_bytes=on_bytes,
            discard=self._discard,
            repair=repair,
        )
        return self._record(
            ingest,
            _PushMeta(
                name,
                version,
                actor,
                notes,
                tuple(datasets),
                comps,
                parent_ref,
                dict(metrics or {}),
                code,
                dict(training_config or {}),
            ),
            started=started,
            sources=files,
            repair=repair,
            after_record=cache.save,
        )

    def push_stored(
        self,
        files: Sequence[StoredFile],
        *,
        name: str,
        version: str,
        actor: Actor,
        notes: Notes | None = None,
        datasets: Sequence[Dataset] = (),
        components: Mapping[str, str] | None = None,
        parent: str | None = None,
        metrics: Mapping[str, float] | None = None,
        code: CodeRef | None = None,
        training_config: Mapping[str, Any] | None = None,
        allow_pickle: bool = False,
    ) -> PushResult:
        """``push`` of files whose blobs are already in the store (a remote push's commit).

        The same rules as ``push``: names, paths, formats (pickles refused unless
        allowed), components, a version never reused; the blobs must be there with
        their sizes (uploads verified each one against its digest).
        """
        from airlock.services.ingest import IngestResult, check_stored, file_entry, inspect_stored

        started = time.perf_counter()
        check_name(name)
        version = str(Version.parse(version))
        authorize(self.db, actor, Action.RELEASE_PUSH, f"{name}@{version}")
        check_stored(self.store, files)
        formats = inspect_stored(self.store, files, allow_pickle=allow_pickle)
        comps, parent_ref = self._push_context({f.rel for f in files}, components, parent)
        entries = tuple(file_entry(f.rel, f.digest, f.size, formats.get(f.rel)) for f in files)
        total = sum(e.size for e in entries)
        ingest = IngestResult(entries, (), total, 0, 0)
        meta = _PushMeta(
            name,
            version,
            actor,
            notes,
            tuple(datasets),
            comps,
            parent_ref,
            dict(metrics or {}),
            code,
            dict(training_config or {}),
        )
        return self._record(ingest, meta, started=started, sources=None, repair=False)

    def _push_context(
        self, rels: set[str], components: Mapping[str, str] | None, parent: str | None
    ) -> tuple[dict[str, Component], str | None]:
        with self.db.read() as conn:
            comps = self._components(conn, rels, dict(components or {}))
            parent_ref = self._resolve(conn, parent).ref if parent else None
        return comps, parent_ref

    def _record(
        self,
        ingest: IngestResult,
        meta: _PushMeta,
        *,
        started: float,
        sources: list[SourceFile] | None,
        repair: bool,
        after_record: Callable[[], None] | None = None,
    ) -> PushResult:
        """Build, store and record the manifest of stored files; undo what this push added."""
        from airlock.core.manifest import Lineage, Notes

        name, version, actor = meta.name, meta.version, meta.actor
        added = list(ingest.new_blobs)
        try:
            signature = self._pushed_signature(ingest.entries)  # model.sig: refused if bad
            manifest = _build_manifest(
                name=name,
                version=version,
                files=ingest.entries,
                components=meta.components,
                lineage=Lineage(
                    datasets=meta.datasets,
                    code=meta.code,
                    training_config=meta.training_config,
                    parent=meta.parent,
                ),
                metrics=meta.metrics,
                notes=meta.notes or Notes(),
                author=actor.name,
            )
            canonical = manifest.canonical()
            manifest_blob, manifest_new = self.store.ingest(_bytes_stream(canonical))
            if manifest_new:
                added.append(manifest_blob)
            created = self._record_push(manifest, canonical.decode("utf-8"), actor)
        except BaseException:
            self._discard(added)
            raise
        if after_record is not None:
            after_record()
        repaired = ingest.repaired
        if not created:
            self._discard(added)  # the same content was already there under this version
            if not repair and sources is not None:
                from airlock.services.ingest import repair_damaged

                # a re-push of the same release checks what it would have stored
                repaired += repair_damaged(
                    self.store, sources, ingest.entries, workers=self.ws.settings.worker_count
                )
        if repaired:
            from airlock.services.repair import record_repair

            record_repair(self.ws, actor, repaired, source=f"push {name}@{version}")
        if signature is not None:
            from airlock.services.openssf_signatures import record_pushed
            from airlock.services.signatures import Signatures

            release = self.resolve(f"{name}@{version}")
            record_pushed(Signatures(self.ws), release, signature, actor=actor)
        existing = manifest if created else self.resolve(f"{name}@{version}").manifest()
        return PushResult(
            ref=existing.ref,
            digest=existing.digest(),
            created=created,
            files=len(ingest.entries),
            bytes_total=ingest.bytes_total,
            bytes_read=ingest.bytes_read,
            bytes_new=ingest.bytes_new,
            seconds=time.perf_counter() - started,
            manifest=existing,
            repaired=repaired,
        )

    def import_release(
        self,
        manifest_json: bytes,
        files: Sequence[SourceFile],
        *,
        actor: Actor,
        expected_digest: Digest | None = None,
        source: str = "",
        allow_pickle: bool = False,
        on_bytes: ProgressFn | None = None,
    ) -> PushResult:
        """Store a release made elsewhere exactly as its manifest says: the same release digest.

        ``push`` makes a release: it stamps the pushing actor as the manifest's
        ``author`` and the time as its ``created_at``. An import brings an existing
        release here: the manifest is stored byte for byte, so it keeps its
        original author and time (who made the release, like git's author) while
        the ``release.import`` audit event records who brought it into this
        workspace and when (like git's committer), with ``source`` (e.g. the
        layout's path).

        Checked before anything is recorded, all or nothing: the manifest is
        canonical and hashes to ``expected_digest`` (when given); the files given
        are exactly the manifest's paths and sizes, and each hashes, as it is
        stored, to its listed digest; the parent and component releases it names
        are in this workspace. Pickle-based files need ``allow_pickle``. A version
        already holding this release is a no-op (``created`` False); one holding
        the same content pushed here separately is kept (its own digest is
        returned); other content is a ``Conflict``.
        """
        from airlock.services.ingest import check_sources, inspect_formats, store_files

        started = time.perf_counter()
        manifest = _imported_manifest(manifest_json, expected_digest)
        authorize(self.db, actor, Action.RELEASE_PUSH, manifest.ref)
        listed = {f.path: f for f in manifest.files}
        given = {f.rel: f for f in files}
        odd = sorted(set(listed) ^ set(given)) or sorted(
            p for p, f in given.items() if f.size != listed[p].size
        )
        if odd:
            raise IntegrityError(
                f"the files to import are not those of {manifest.ref}: "
                f"{', '.join(quoted(p, 60) for p in odd[:5])} (missing, extra or another size)",
                hint="the copy was changed or is incomplete: export the release again",
            )
        files = list(files)
        check_sources(files)
        if manifest.has_pickle and not allow_pickle:
            from airlock.errors import UnsafeArtifact

            raise UnsafeArtifact(f"{manifest.ref} contains pickle-based files")
        formats = inspect_formats(files, allow_pickle=allow_pickle)
        with self.db.read() as conn:
            self._check_references(conn, manifest)
        ingest = store_files(
            self.store,
            files,
            formats,
            workers=self.ws.settings.worker_count,
            on_bytes=on_bytes,
            discard=self._discard,
        )
        added = list(ingest.new_blobs)
        try:
            wrong = [
                e.path
                for e in ingest.entries
                if (e.digest, e.size) != (listed[e.path].digest, listed[e.path].size)
            ]
            if wrong:
                raise IntegrityError(
                    f"{len(wrong)} file(s) do not hash to the digest {manifest.ref} lists: "
                    f"{', '.join(quoted(p, 60) for p in wrong[:5])}",
                    hint="the copy was changed or damaged: export the release again",
                )
            signature = self._pushed_signature(manifest.files)  # model.sig: refused if bad
            manifest_blob, manifest_new = self.store.ingest(_bytes_stream(manifest_json))
            if manifest_new:
                added.append(manifest_blob)
            created = self._record_push(
                manifest,
                manifest_json.decode("utf-8"),
                actor,
                action="release.import",
                details={
                    "author": manifest.author,
                    "created_at": manifest.created_at.isoformat(),
                    "source": source,
                },
            )
        except BaseException:
            self._discard(added)
            raise
        if not created:
            self._discard(added)
        if ingest.repaired:  # a damaged stored blob replaced from the imported file
            from airlock.services.repair import record_repair

            record_repair(self.ws, actor, ingest.repaired, source=f"import {manifest.ref}")
        if created and signature is not None:
            from airlock.services.openssf_signatures import record_pushed
            from airlock.services.signatures import Signatures

            release = self.resolve(manifest.ref)
            record_pushed(Signatures(self.ws), release, signature, actor=actor)
        existing = manifest if created else self.resolve(manifest.ref).manifest()
        return PushResult(
            ref=existing.ref,
            digest=existing.digest(),
            created=created,
            files=len(ingest.entries),
            bytes_total=ingest.bytes_total,
            bytes_read=ingest.bytes_read,
            bytes_new=ingest.bytes_new,
            seconds=time.perf_counter() - started,
            manifest=existing,
            repaired=ingest.repaired,
        )

    def _check_references(self, conn: Connection, manifest: Manifest) -> None:
        """The releases and blobs an imported manifest names must be here already."""
        named = [("parent", manifest.lineage.parent)] + [
            (f"component {role}", c.ref) for role, c in manifest.components.items()
        ]
        for what, ref in named:
            if ref is None:
                continue
            try:
                self._resolve(conn, ref)
            except NotFound:
                raise NotFound(
                    f"{manifest.ref} names {ref} as its {what}, and {ref} is not in this workspace",
                    hint=f"import {ref} first (`airlock export {ref} --oci DIR` where it lives)",
                ) from None
        for role, c in manifest.components.items():
            if c.digest is not None and not self.store.has(c.digest):
                raise NotFound(
                    f"{manifest.ref} names blob {short(c.digest)} as its component {role}, "
                    "and the store does not hold it",
                    hint="push that blob here first",
                )

    def _pushed_signature(self, entries: Sequence[FileEntry]) -> str | None:
        """The folder's OpenSSF ``model.sig``, verified against its files (None: there is none)."""
        from airlock.core.digest import hex_of
        from airlock.core.openssf_signing import SIGNATURE_FILE
        from airlock.services.openssf_signatures import pushed_signature

        sig = next((e for e in entries if e.path == SIGNATURE_FILE), None)
        if sig is None or sig.size > 16 << 20:
            return None
        data = self.store.read(sig.digest)
        return pushed_signature(self.ws, [(e.path, hex_of(e.digest)) for e in entries], data)

    def _components(
        self, conn: Connection, rels: set[str], given: dict[str, str]
    ) -> dict[str, Component]:
        from airlock.core.manifest import Component
        from airlock.services.push_inputs import WELL_KNOWN_COMPONENTS

        comps: dict[str, Component] = {
            role: Component(path=rel)
            for rel, role in WELL_KNOWN_COMPONENTS.items()
            if rel in rels and role not in given
        }
        for role, value in given.items():
            check_name(role, "component role")
            if value in rels:
                comps[role] = Component(path=value)
            elif value.startswith("sha256:"):
                digest = parse_digest(value)
                if not self.store.has(digest):
                    raise NotFound(
                        f"component {role}: blob {short(digest)} is not in the store",
                        hint="push the file first, or name a file of the release folder",
                    )
                comps[role] = Component(digest=digest)
            else:
                try:
                    comps[role] = Component(ref=self._resolve(conn, value).ref)
                except (NotFound, InvalidInput) as exc:
                    raise InvalidInput(
                        f"component {role}={quoted(value)}: not a file of the folder, a blob "
                        f"digest or a release ({exc.message[:200]})",
                        hint="use ROLE=path/in/folder, ROLE=sha256:<hex> or ROLE=model@version",
                    ) from exc
        return comps

    def _record_push(
        self,
        manifest: Manifest,
        manifest_json: str,
        actor: Actor,
        *,
        action: str = "release.push",
        details: Mapping[str, Any] | None = None,
    ) -> bool:
        """Insert the release row and its audit event (``release.push`` or ``release.import``)."""
        with self.db.write() as conn:
            # Under the audit lock (which garbage collection takes too), make sure
            # every blob this release names is still there: an old orphan reused by
            # this push could otherwise be collected between hashing and recording.
            event_sql.lock_head(conn)
            gone = [f.path for f in manifest.files if not self.store.has(f.digest)]
            if gone or not self.store.has(manifest.digest()):
                raise Conflict(
                    f"blobs of {manifest.ref} vanished from the store while pushing "
                    f"({', '.join(gone[:3]) or 'manifest'}): garbage collection ran meanwhile",
                    hint="push again",
                )
            existing = release_sql.by_version(conn, manifest.name, manifest.version)
            if existing is not None:
                if existing.content_key == manifest.content_key():
                    return False
                raise Conflict(
                    f"{manifest.ref} already exists with different content "
                    f"({short(existing.digest)}); a version number is never reused",
                    hint=f"push it as a new version, e.g. {_next_patch(manifest.version)}",
                )
            parent_id = None
            if manifest.lineage.parent:
                parent_id = self._resolve(conn, manifest.lineage.parent).id
            release_sql.insert_release(conn, manifest, manifest_json, parent_id)
            audit.append(
                conn,
                actor=actor.name,
                action=action,
                subject=manifest.ref,
                details={
                    "digest": manifest.digest(),
                    "files": len(manifest.files),
                    "bytes": manifest.total_size,
                    "parameters": manifest.parameters,
                    "has_pickle": manifest.has_pickle,
                    "parent": manifest.lineage.parent,
                    **(details or {}),
                },
            )
        return True

    def _discard(self, digests: list[Digest]) -> None:
        """Remove blobs a failed push added, unless some release uses them by now."""
        if not digests:
            return
        with self.db.read() as conn:
            used = release_sql.file_digests(conn) | release_sql.manifest_digests(conn)
        for d in digests:
            if d not in used:
                self.store.delete(d)

    # -- aliases -----------------------------------------------------------------
    def set_alias(self, alias: str, ref: str, *, actor: Actor, reason: str) -> AliasResult:
        """Move ``alias`` to ``ref`` if the policy allows it (see :mod:`.promotion`)."""
        from airlock.services.promotion import Promotion

        return Promotion(self.ws).set_alias(alias, ref, actor=actor, reason=reason)

    def alias_history(self, model: str | None = None, alias: str | None = None) -> list[AliasMove]:
        with self.db.read() as conn:
            return alias_sql.history(conn, model=model, alias=alias)

    # -- integrity -----------------------------------------------------------------
    def verify(
        self,
        ref: str | None = None,
        *,
        on_start: Callable[[int], None] | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> VerifyReport:
        """Re-hash blobs (all of them, or one release's) and name each damaged one's users."""
        with self.db.read() as conn:
            if ref is None:
                wanted: set[str] = set(self.store.digests())
                referenced = release_sql.file_digests(conn) | release_sql.manifest_digests(conn)
            else:
                row = self._resolve(conn, ref)
                referenced = release_sql.file_digests(conn, [row.id]) | {row.digest}
                wanted = set(referenced)
            missing_set = {d for d in referenced if not self.store.has(Digest(d))}
            wanted -= missing_set
            sizes = {d: self.store.size(Digest(d)) for d in wanted}
            if on_start is not None:
                on_start(sum(sizes.values()))

            def check(d: str) -> tuple[str, bool]:
                ok = self.store.verify(Digest(d))
                if on_bytes is not None:
                    on_bytes(sizes[d])
                return d, ok

            order = sorted(wanted, key=lambda d: -sizes[d])
            workers = min(self.ws.settings.worker_count, max(1, len(order)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(check, order))
            bad = sorted(d for d, ok in results if not ok)
            damaged = self._users(conn, bad)
            missing = self._users(conn, sorted(missing_set))
            rows = release_sql.all_releases(conn) if ref is None else [row]
            tampered = {
                r.ref: problem for r in rows if (problem := release_problem(conn, r)) is not None
            }
        return VerifyReport(len(results), sum(sizes.values()), damaged, missing, tampered)

    def _users(self, conn: Connection, digests: list[str]) -> dict[str, list[str]]:
        users = release_sql.releases_using_blob(conn, digests)
        for row in release_sql.all_releases(conn):
            if row.digest in users:
                users[row.digest].append(f"{row.ref} (manifest)")
        return users

    def pull(self, ref: str, dest: Path, *, on_bytes: ProgressFn | None = None) -> PullResult:
        """Materialise a release at ``dest``, verifying every byte; all or nothing."""
        with self.db.read() as conn:
            row = self._resolve(conn, ref)
            manifest = checked_manifest(conn, row)
        from airlock.services.ingest import check_pull_dest

        check_pull_dest(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.pull-"))
        try:
            for entry in manifest.files:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self._copy_verified(entry.digest, target, on_bytes)
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return PullResult(row.ref, dest, len(manifest.files), manifest.total_size)

    def _copy_verified(self, digest: Digest, target: Path, on_bytes: ProgressFn | None) -> None:
        try:
            with self.store.open(digest) as reader, target.open("wb") as out:
                while chunk := reader.read(4 << 20):
                    out.write(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
        except IntegrityError as exc:
            raise IntegrityError(
                f"{exc.message}; refusing to materialise {target.name}",
                hint="run `airlock verify` to see which releases use the damaged blob",
            ) from exc


def _imported_manifest(manifest_json: bytes, expected: Digest | None) -> Manifest:
    """The manifest of an imported release, if it is canonical and hashes to ``expected``."""
    from airlock.core.manifest import manifest_from_json

    manifest = manifest_from_json(manifest_json)
    if manifest.canonical() != manifest_json:
        raise IntegrityError(
            f"the manifest of {manifest.ref} is not in canonical form: it was edited",
            hint="export the release again",
        )
    if expected is not None and manifest.digest() != expected:
        raise IntegrityError(
            f"the manifest of {manifest.ref} hashes to {short(manifest.digest())}, "
            f"not to the release digest {short(expected)}: it was changed",
            hint="export the release again",
        )
    return manifest


def _build_manifest(**fields: Any) -> Manifest:
    from pydantic import ValidationError

    from airlock.core.documents import validation_message
    from airlock.core.manifest import Manifest

    try:
        return Manifest(created_at=datetime.now(UTC), **fields)
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid release: {validation_message(exc, 'release')}",
            hint="fix the value named above (in the flags, the notes or the spec)",
        ) from exc


def _bytes_stream(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _next_patch(version: str) -> str:
    v = Version.parse(version)
    return f"{v.major}.{v.minor}.{v.patch + 1}"
