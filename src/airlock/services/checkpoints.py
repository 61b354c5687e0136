"""Audit checkpoints: sign the chain's head with the workspace's audit key, verify kept ones.

The workspace's audit key is an ed25519 key pair under ``$AIRLOCK_HOME/keys/``
(``audit.key``, mode 0600, and ``audit.key.pub``), made on first use; any other
ed25519 key file can sign instead (``--key``). A checkpoint verifies when its
signature does, its key is the workspace's audit key, a trusted key (``airlock key
trust``) or one given by the caller, and the chain still contains it.

``CheckpointPublisher`` is what ``airlock serve --checkpoint-every N
--checkpoint-file PATH`` runs: each time the chain grew by N events it appends a
checkpoint of the head to PATH (JSON Lines).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from airlock import audit
from airlock.audit.chain import ChainReport, Checkpoint
from airlock.audit.checkpoint import SignedCheckpoint, parse_checkpoints, sign_checkpoint
from airlock.audit.log import now_text
from airlock.catalog import events as event_sql
from airlock.catalog import governance as gov_sql
from airlock.errors import IntegrityError, NotFound
from airlock.services.signatures import generate_key, key_id_of, load_private_key, load_public_key
from airlock.services.workspace import Workspace

log = logging.getLogger("airlock.audit")


def audit_key_path(ws: Workspace) -> Path:
    return ws.home / "keys" / "audit.key"


def audit_key(ws: Workspace, path: Path | None = None) -> Ed25519PrivateKey:
    """The key given, or the workspace's audit key (made on first use)."""
    if path is not None:
        return load_private_key(path)
    return own_key(audit_key_path(ws))


def own_key(path: Path) -> Ed25519PrivateKey:
    """The ed25519 key at ``path``, made there (0600, with ``path.pub``) on first use."""
    if not path.exists():
        generate_key(path)
    return load_private_key(path)


@dataclass(frozen=True, slots=True)
class CheckpointCheck:
    report: ChainReport
    checkpoints: tuple[SignedCheckpoint, ...]
    start: SignedCheckpoint | None = None


class Checkpoints:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

    def make(self, key: Ed25519PrivateKey) -> SignedCheckpoint:
        """A signed checkpoint of the head, after verifying the whole chain."""
        with self.db.read() as conn:
            report = audit.verify(conn)
        return sign_head(report, key)

    def verify(
        self,
        *,
        files: Sequence[tuple[str, str]] = (),
        expect: Sequence[Checkpoint] = (),
        expected_head: str | None = None,
        public_keys: Sequence[str] = (),
        start_from: tuple[str, str] | None = None,
    ) -> CheckpointCheck:
        """Check each signed checkpoint (``files``: name and text) and the chain against all.

        ``start_from`` (name and text of a checkpoint file): verify only the events after its
        newest checkpoint, once its signature is checked and the stored event at its
        sequence still has its hash; the chain is streamed, so memory stays flat.
        """
        with self.db.read() as conn:
            trusted = self._trusted(conn, public_keys)
            signed, start = check_signed(files, start_from, trusted)
            report = audit.verify(
                conn,
                expected_head=expected_head,
                checkpoints=[*expect, *(c.checkpoint for c in signed)],
                start=start.checkpoint if start else None,
            )
        return CheckpointCheck(report, tuple(signed), start)

    def _trusted(self, conn: Connection, public_keys: Sequence[str]) -> set[str]:
        trusted = [k.key_id for k in gov_sql.keys(conn) if k.revoked_at is None]
        return trusted_key_ids(public_keys, audit_key_path(self.ws), trusted)


def trusted_key_ids(
    public_keys: Sequence[str], own_key: Path | None, trusted: Sequence[str]
) -> set[str]:
    """Whose checkpoints count: the PEM keys given, the public half of ``own_key`` (the
    audit key that signs here, if it exists) and the ``trusted`` key ids."""
    ids = {key_id_of(load_public_key(pem)) for pem in public_keys}
    pub = own_key.with_name(own_key.name + ".pub") if own_key is not None else None
    if pub is not None and pub.exists():
        ids.add(key_id_of(load_public_key(pub.read_text(encoding="ascii"))))
    ids.update(trusted)
    return ids


def check_signed(
    files: Sequence[tuple[str, str]],
    start_from: tuple[str, str] | None,
    trusted: set[str],
) -> tuple[tuple[SignedCheckpoint, ...], SignedCheckpoint | None]:
    """The checkpoints of ``files`` and the newest of ``start_from`` (name and text each),
    every signature checked and made by a ``trusted`` key (else IntegrityError)."""
    signed = [c for name, text in files for c in parse_checkpoints(text, source=name)]
    start: SignedCheckpoint | None = None
    if start_from is not None:
        name, text = start_from
        start = max(parse_checkpoints(text, source=name), key=lambda c: c.checkpoint.seq)
    for c in [*signed, *([start] if start else [])]:
        c.check_signature()
        if c.key_id not in trusted:
            raise IntegrityError(
                f"checkpoint {c.checkpoint.seq} was signed by key {c.key_id}, which is "
                "neither this workspace's audit key nor a trusted key",
                hint="give the signer's public key with --public-key, "
                "or trust it with `airlock key trust`",
            )
    return tuple(signed), start


def sign_head(report: ChainReport, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """A signed checkpoint of the head of a chain verified as ``report`` says."""
    if not report.ok:
        assert report.problem is not None
        raise IntegrityError(
            f"the audit chain is broken at event {report.problem.seq}: "
            f"{report.problem.message}; refusing to sign a checkpoint of it",
            hint="run `airlock audit verify` and restore the catalog from a backup",
        )
    if report.head_seq == 0:
        raise NotFound("the audit log is empty: nothing to checkpoint yet")
    return sign_checkpoint(Checkpoint(report.head_seq, report.head_hash), now_text(), key)


class CheckpointPublisher:
    """Append a signed checkpoint to ``path`` each time the chain grew by ``every`` events."""

    def __init__(self, workspace: Workspace, path: Path, every: int, key: Ed25519PrivateKey):
        if every < 1:
            raise ValueError("checkpoint interval must be at least 1 event")
        self.checkpoints = Checkpoints(workspace)
        self.path = path
        self.every = every
        self.key = key
        self.last_seq = _last_published(path)
        self.published = 0

    def poll(self) -> SignedCheckpoint | None:
        """Publish if due (call it from a worker thread, e.g. once a second)."""
        with self.checkpoints.db.read() as conn:
            head = event_sql.head(conn)
        if head is None or head[0] < self.last_seq + self.every:
            return None
        checkpoint = self.checkpoints.make(self.key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(checkpoint.to_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.last_seq = checkpoint.checkpoint.seq
        self.published += 1
        log.info("audit checkpoint %s written to %s", checkpoint.checkpoint, self.path)
        return checkpoint


def _last_published(path: Path) -> int:
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return 0
    return max(c.checkpoint.seq for c in parse_checkpoints(text, source=str(path)))


__all__ = [
    "CheckpointCheck",
    "CheckpointPublisher",
    "Checkpoints",
    "SignedCheckpoint",
    "audit_key",
    "audit_key_path",
    "check_signed",
    "own_key",
    "sign_head",
    "trusted_key_ids",
]
