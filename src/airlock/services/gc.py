"""Garbage collection of the blob store: plan, then execute (CONVENTIONS habit 5).

A blob is *in use* when a release names it: as the release's manifest blob, or
anywhere in its manifest (a file, a component or dataset digest). Every other
blob is an orphan, left by a push that failed after storing or was abandoned.

``plan_gc(ws)`` only reads: it lists the orphans with their sizes and ages and
can be shown (``airlock gc --dry-run``). ``plan.execute(ws, actor)`` deletes them
and appends one ``store.gc`` audit event, in one catalog write transaction.

It also removes temporary files that writes left in the store's staging area
(``blobs/.staging`` of a local store) when their process was killed: those
not written to for ``staging_min_age`` seconds (default ten minutes; a live
write touches its file with every chunk).

Two guards keep a push that runs at the same time safe:

- orphans younger than ``min_age`` seconds (default one hour) are spared: they
  may be the blobs of a push whose release is not recorded yet;
- ``execute`` re-reads which blobs are in use inside its write transaction and
  spares any orphan a release has started to use since the plan was made.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import events as event_sql
from airlock.catalog import releases as release_sql
from airlock.core.digest import Digest
from airlock.core.roles import Action
from airlock.errors import AirlockError, InvalidInput, NotFound
from airlock.services import access
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace
from airlock.store import StagingArea, StagingFile

GC_ACTION = Action.STORE_GC
DEFAULT_MIN_AGE = 3600.0  # seconds: longer than any push is expected to take
DEFAULT_STAGING_MIN_AGE = 600.0  # seconds without a write: the writer is gone
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Orphan:
    """A blob no release uses."""

    digest: Digest
    size: int
    age_seconds: float


@dataclass(frozen=True, slots=True)
class GcResult:
    deleted: tuple[Orphan, ...]
    spared: tuple[Digest, ...]  # planned, but a release started using them before execution
    event_seq: int | None  # the ``store.gc`` audit event; None when nothing was deleted
    staging_removed: tuple[StagingFile, ...] = ()

    @property
    def count(self) -> int:
        return len(self.deleted)

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.deleted)


@dataclass(frozen=True, slots=True)
class GcPlan:
    """What garbage collection would delete from one store; a value, shown before it is run."""

    store_url: str
    min_age: float
    orphans: tuple[Orphan, ...]  # to delete, in digest order
    young: tuple[Orphan, ...]  # unused but younger than ``min_age``: spared this time
    in_use: int  # blobs in the store that some release uses
    staging: tuple[StagingFile, ...] = ()  # temporary files of killed writes: to remove
    staging_live: tuple[StagingFile, ...] = ()  # written to recently: a write in flight
    staging_min_age: float = DEFAULT_STAGING_MIN_AGE

    @property
    def count(self) -> int:
        return len(self.orphans)

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.orphans)

    def execute(self, workspace: Workspace, actor: Actor) -> GcResult:
        """Delete the planned orphans that are still unused; one audit event for the lot.

        Only an admin may collect garbage. If the store fails midway, the event
        records what was deleted before the failure, and the error is raised.
        """
        store = workspace.store
        if store.url != self.store_url:
            raise InvalidInput(
                f"this plan is for the store {self.store_url}, not {store.url}",
                hint="make a new plan for this workspace (`airlock gc --dry-run`)",
            )
        access.authorize(workspace.db, actor, GC_ACTION, self.store_url)
        if not self.orphans and not self.staging:
            return GcResult((), (), None)
        deleted: list[Orphan] = []
        spared: list[Digest] = []
        failure: AirlockError | None = None
        event_seq: int | None = None
        with workspace.db.write() as conn:
            event_sql.lock_head(conn)  # serialise with every other audited change
            used = used_digests(conn)
            for orphan in self.orphans:
                if orphan.digest in used:
                    spared.append(orphan.digest)
                    continue
                try:
                    store.delete(orphan.digest)
                except AirlockError as exc:
                    failure = exc
                    break
                deleted.append(orphan)
            removed = _remove_staging(store, self.staging, self.staging_min_age)
            if deleted or removed:
                details: dict[str, int] = {
                    "count": len(deleted),
                    "bytes": sum(o.size for o in deleted),
                }
                if removed:
                    details["staging_files"] = len(removed)
                    details["staging_bytes"] = sum(f.size for f in removed)
                event = audit.append(
                    conn,
                    actor=actor.name,
                    action=GC_ACTION,
                    subject=self.store_url,
                    details=details,
                )
                event_seq = event.seq
        if failure is not None:
            raise type(failure)(
                f"garbage collection stopped after deleting {len(deleted)} of "
                f"{len(self.orphans)} blob(s): {failure.message}",
                hint=failure.hint or "fix the store and run `airlock gc` again",
            ) from failure
        return GcResult(tuple(deleted), tuple(spared), event_seq, tuple(removed))

    @property
    def staging_bytes(self) -> int:
        return sum(f.size for f in self.staging)


def _remove_staging(
    store: object, planned: tuple[StagingFile, ...], min_age: float
) -> list[StagingFile]:
    """Remove the planned temporary files that are still idle (a file written since is kept)."""
    if not planned or not isinstance(store, StagingArea):
        return []
    now = {f.name: f for f in store.staging_files()}
    removed = []
    for f in planned:
        current = now.get(f.name)
        if current is not None and current.age_seconds >= min_age and store.remove_staging(f.name):
            removed.append(current)
    return removed


def plan_gc(
    workspace: Workspace,
    *,
    min_age: float = DEFAULT_MIN_AGE,
    staging_min_age: float = DEFAULT_STAGING_MIN_AGE,
) -> GcPlan:
    """List the blobs no release uses, sparing those younger than ``min_age`` seconds,
    and the staging files idle for ``staging_min_age`` seconds."""
    for option, value in (("--min-age", min_age), ("--staging-min-age", staging_min_age)):
        if not math.isfinite(value) or value < 0:
            raise InvalidInput(
                f"{option} must be a number of seconds ≥ 0, not {value}",
                hint=f"e.g. {option} 3600 spares what was written in the last hour",
            )
    store = workspace.store
    with workspace.db.read() as conn:
        used = used_digests(conn)
    orphans: list[Orphan] = []
    young: list[Orphan] = []
    in_use = 0
    for digest in store.digests():
        if digest in used:
            in_use += 1
            continue
        try:
            orphan = Orphan(digest, store.size(digest), store.age_seconds(digest))
        except NotFound:
            continue  # deleted since it was listed (another gc, or a push undoing itself)
        (orphans if orphan.age_seconds >= min_age else young).append(orphan)
    stale: list[StagingFile] = []
    live: list[StagingFile] = []
    if isinstance(store, StagingArea):
        for f in store.staging_files():
            (stale if f.age_seconds >= staging_min_age else live).append(f)
    return GcPlan(
        store.url,
        min_age,
        tuple(orphans),
        tuple(young),
        in_use,
        tuple(stale),
        tuple(live),
        staging_min_age,
    )


def used_digests(conn: Connection) -> set[str]:
    """Every blob digest a release uses: manifests, files, and any digest a manifest names."""
    used = release_sql.manifest_digests(conn) | release_sql.file_digests(conn)
    for row in release_sql.all_releases(conn):
        used.update(_DIGEST_RE.findall(row.manifest_json))
    return used
