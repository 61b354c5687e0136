"""Catalog rows are checked, not trusted: is a release row what was pushed?

A release's identity is the digest of its canonical manifest. The catalog keeps
that digest, the manifest itself, and — on the audit chain — the ``release.push``
event that recorded the digest when the release was pushed. Someone who edits the
catalog can swap the manifest row (it no longer hashes to the digest), or forge
a release consistently (manifest and digest changed together, the new manifest
written to the store): the digest then differs from the one on the audit chain,
which ``airlock audit verify`` protects (and checkpoints, against a rewrite).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

from airlock import audit
from airlock.core.digest import short
from airlock.core.records import Release
from airlock.errors import AirlockError, IntegrityError

if TYPE_CHECKING:
    from airlock.core.manifest import Manifest

RECORDING_ACTIONS = ("release.push", "release.import")
"""The audit events that bring a release into the catalog (made here, or imported as is)."""


def pushed_digest(conn: Connection, ref: str) -> str | None:
    """The digest the newest ``release.push`` or ``release.import`` event of ``ref`` recorded."""
    newest = [
        event
        for action in RECORDING_ACTIONS
        for event in audit.entries(conn, action=action, subject=ref, newest_first=True, limit=1)
    ]
    if not newest:
        return None
    digest = max(newest, key=lambda e: e.seq).details.get("digest")
    return digest if isinstance(digest, str) else None


def importers(conn: Connection, ref: str) -> frozenset[str]:
    """Who brought ``ref`` into this catalog by ``release.import``: like its author, an
    importer chose the manifest (its ``author`` field included) and may not approve it."""
    return frozenset(e.actor for e in audit.entries(conn, action="release.import", subject=ref))


def release_problem(conn: Connection, row: Release) -> str | None:
    """Why ``row`` is not the release that was pushed, or None when it is."""
    from pydantic import ValidationError  # a manifest is a pydantic model: only when checked

    from airlock.core.manifest import manifest_from_json

    try:
        manifest = manifest_from_json(row.manifest_json)
    except (ValidationError, ValueError, AirlockError):
        return "its manifest row is not a valid manifest: the row was edited"
    actual = manifest.digest()
    if actual != row.digest:
        return (
            f"its manifest row hashes to {short(actual)}, not to its digest {short(row.digest)}: "
            "the manifest row was edited or swapped"
        )
    if manifest.ref != row.ref:
        return f"its manifest is the one of {manifest.ref}: the manifest row was swapped"
    pushed = pushed_digest(conn, row.ref)
    if pushed is None:
        return (
            "no release.push or release.import event on the audit chain records it: "
            "it was added to the catalog"
        )
    if pushed != row.digest:
        return (
            f"its digest {short(row.digest)} is not the one recorded when it was pushed "
            f"({short(pushed)}): the release was forged in the catalog"
        )
    return None


def checked_manifest(conn: Connection, row: Release) -> Manifest:
    """The row's manifest, after checking the row is what was pushed (IntegrityError if not)."""
    problem = release_problem(conn, row)
    if problem is not None:
        raise tampered(row.ref, problem)
    return row.manifest()


def tampered(ref: str, problem: str) -> IntegrityError:
    return IntegrityError(
        f"release {ref} is tampered: {problem}",
        hint="run `airlock verify` to list every tampered release and `airlock audit verify`; "
        "restore the catalog from a backup",
    )
