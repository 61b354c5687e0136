"""Put damaged or missing blobs back from good copies of their bytes.

``airlock verify`` names damaged blobs; ``airlock verify --repair PATH`` (or
``airlock push --repair``) replaces each one from a file under ``PATH`` whose
bytes hash to the blob's digest. Nothing intact is ever overwritten: the store
checks the new bytes against the digest and the old blob before it replaces
anything, atomically. Manifest blobs are put back from the catalog's copy of
the manifest when it still hashes to the release's digest. Each run that
changed the store appends one ``store.repair`` audit event.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from airlock import audit
from airlock.catalog import releases as release_sql
from airlock.core.digest import Digest, digest_bytes
from airlock.core.roles import Action
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.ingest import scan_folder
from airlock.services.workspace import Workspace

REPAIR_ACTION = "store.repair"
ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RepairReport:
    repaired: dict[str, list[str]] = field(default_factory=dict)  # digest -> its users
    unrepaired: dict[str, list[str]] = field(default_factory=dict)  # no good copy was found
    event_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.unrepaired


def repair_store(
    workspace: Workspace,
    source: Path,
    *,
    actor: Actor,
    ref: str | None = None,
    on_bytes: ProgressFn | None = None,
) -> RepairReport:
    """Verify the store (or one release's blobs) and repair what is damaged from ``source``."""
    from airlock.services.registry import Registry

    authorize(workspace.db, actor, Action.RELEASE_PUSH, f"repair of {workspace.store.url}")
    files = scan_folder(source)  # the folder is checked before anything is hashed
    report = Registry(workspace).verify(ref)
    users = {**report.damaged, **report.missing}
    if not users:
        return RepairReport()
    wanted = {Digest(d) for d in users}
    store = workspace.store
    fixed: list[Digest] = []
    # Manifests: the catalog keeps the canonical JSON of each release.
    with workspace.db.read() as conn:
        manifests = {
            row.digest: row.manifest_json.encode("utf-8")
            for row in release_sql.all_releases(conn)
            if row.digest in wanted
        }
    for digest, raw in manifests.items():
        if digest_bytes(raw) == digest and store.repair(io.BytesIO(raw), digest) != "intact":
            fixed.append(digest)
    # Files: hash only those whose size is the size of a blob to repair.
    sizes = _expected_sizes(workspace, wanted - set(fixed))
    for f in files:
        if sizes is not None and f.size not in sizes:
            continue
        digest = _hash(f.path)
        if digest in wanted and digest not in fixed:
            with f.path.open("rb", buffering=0) as stream:
                if store.repair(stream, digest, on_bytes=on_bytes) != "intact":
                    fixed.append(digest)
    seq = record_repair(workspace, actor, fixed, source=str(source)) if fixed else None
    return RepairReport(
        repaired={d: users[d] for d in fixed},
        unrepaired={d: u for d, u in users.items() if Digest(d) not in fixed},
        event_seq=seq,
    )


def record_repair(
    workspace: Workspace, actor: Actor, digests: Iterable[Digest], *, source: str
) -> int:
    """One ``store.repair`` audit event naming the blobs put back."""
    with workspace.db.write() as conn:
        event = audit.append(
            conn,
            actor=actor.name,
            action=REPAIR_ACTION,
            subject=workspace.store.url,
            details={"blobs": sorted(digests), "source": source[:1024]},
        )
    return event.seq


def _expected_sizes(workspace: Workspace, digests: set[Digest]) -> set[int] | None:
    """The sizes the manifests give for these blobs; None when one is not a file of any
    release (a component named by digest): then every file is hashed."""
    sizes: dict[Digest, int] = {}
    with workspace.db.read() as conn:
        for row in release_sql.all_releases(conn):
            for entry in row.manifest().files:
                if entry.digest in digests:
                    sizes[entry.digest] = entry.size
    return set(sizes.values()) if set(sizes) == digests else None


def _hash(path: Path) -> Digest:
    import hashlib

    with path.open("rb") as f:
        return Digest(f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}")
