"""Where ``airlock audit verify|head|checkpoint`` send their work: the catalog, or a server.

``open_audit()`` picks the transport once (:func:`airlock.cli.backend.open_side`).
Both sides return the same values (:class:`~airlock.services.checkpoints.CheckpointCheck`,
:class:`~airlock.services.audit_chain.ChainHead`, a signed checkpoint), so the command
renders them the same way.

A tamper-evident log is only worth what its verifier is, so remotely the server is
not asked whether its chain is intact (it could lie): :class:`RemoteAudit` downloads
the stored events (paged by sequence, streamed) and recomputes every hash and link on
this machine (:func:`airlock.services.audit_chain.check_chain`), against the
checkpoints and expected head the user holds. ``--from-checkpoint`` downloads only the
events after the checkpoint. ``checkpoint`` signs the head this machine verified with
a key that stays here: ``--key``, or this user's own audit key
(``$XDG_CONFIG_HOME/airlock/keys/audit.key``, made on first use), which
``verify`` then trusts, next to the keys given with ``--public-key`` and the server's
trusted keys (``airlock key trust``).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from airlock.client import Client
    from airlock.services.audit_chain import ChainEvent, ChainHead
    from airlock.services.audit_views import ChainReport, Checkpoint
    from airlock.services.checkpoints import CheckpointCheck, SignedCheckpoint
    from airlock.services.workspace import Workspace

CountFn = Callable[[int], None]
TICK = 1000  # events between progress updates


class AuditSide(Protocol):
    """What the audit verification commands call; local and remote alike."""

    remote: bool
    where: str  # the server's URL, or "" for the local workspace

    def verify(
        self,
        *,
        files: Sequence[tuple[str, str]],
        expect: Sequence[Checkpoint],
        expected_head: str | None,
        public_keys: Sequence[str],
        start_from: tuple[str, str] | None,
        on_start: CountFn | None = None,
        on_events: CountFn | None = None,
    ) -> CheckpointCheck: ...

    def head(self) -> ChainHead: ...

    def checkpoint(
        self, key: Path | None, *, on_start: CountFn | None = None, on_events: CountFn | None = None
    ) -> SignedCheckpoint: ...


@contextmanager
def open_audit() -> Iterator[AuditSide]:
    """The remote side when a server is configured, else the local workspace's."""
    from airlock.cli.backend import open_side

    local: Callable[[Workspace], AuditSide] = LocalAudit
    remote: Callable[[Client], AuditSide] = RemoteAudit
    with open_side(local, remote) as side:
        yield side


def laptop_key_path() -> Path:
    """This user's own audit key for checkpoints of a remote chain (never sent anywhere)."""
    from airlock.cli.backend import config_path

    return config_path().parent / "keys" / "audit.key"


class LocalAudit:
    remote = False
    where = ""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def verify(
        self,
        *,
        files: Sequence[tuple[str, str]],
        expect: Sequence[Checkpoint],
        expected_head: str | None,
        public_keys: Sequence[str],
        start_from: tuple[str, str] | None,
        on_start: CountFn | None = None,
        on_events: CountFn | None = None,
    ) -> CheckpointCheck:
        from airlock.services.checkpoints import Checkpoints

        return Checkpoints(self.ws).verify(
            files=files,
            expect=expect,
            expected_head=expected_head,
            public_keys=public_keys,
            start_from=start_from,
        )

    def head(self) -> ChainHead:
        from airlock.services.audit_views import AuditLog, ChainHead

        report = AuditLog(self.ws).verify()
        return ChainHead(report.head_seq, report.head_hash)

    def checkpoint(
        self, key: Path | None, *, on_start: CountFn | None = None, on_events: CountFn | None = None
    ) -> SignedCheckpoint:
        from airlock.services.checkpoints import Checkpoints, audit_key

        return Checkpoints(self.ws).make(audit_key(self.ws, key))


class RemoteAudit:
    """The chain downloaded from the server and verified here; keys stay on this machine."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client
        self.where = client.base_url

    def verify(
        self,
        *,
        files: Sequence[tuple[str, str]],
        expect: Sequence[Checkpoint],
        expected_head: str | None,
        public_keys: Sequence[str],
        start_from: tuple[str, str] | None,
        on_start: CountFn | None = None,
        on_events: CountFn | None = None,
    ) -> CheckpointCheck:
        from airlock.services.checkpoints import CheckpointCheck, check_signed, trusted_key_ids

        server_keys = [k["key_id"] for k in self.client.keys() if not k.get("revoked_at")]  # noqa: SIM118 (a method)
        trusted = trusted_key_ids(public_keys, laptop_key_path(), server_keys)
        signed, start = check_signed(files, start_from, trusted)
        report = self._recompute(
            expected_head=expected_head,
            checkpoints=[*expect, *(c.checkpoint for c in signed)],
            start=start.checkpoint if start else None,
            on_start=on_start,
            on_events=on_events,
        )
        return CheckpointCheck(report, signed, start)

    def head(self) -> ChainHead:
        from airlock.services.audit_chain import ChainHead

        out = self.client.audit_head()
        return ChainHead(int(out["seq"]), str(out["hash"]))

    def checkpoint(
        self, key: Path | None, *, on_start: CountFn | None = None, on_events: CountFn | None = None
    ) -> SignedCheckpoint:
        from airlock.services.checkpoints import sign_head

        signer = _signing_key(key)  # a missing key file fails before any download
        report = self._recompute(on_start=on_start, on_events=on_events)
        return sign_head(report, signer)

    def _recompute(
        self,
        *,
        expected_head: str | None = None,
        checkpoints: Sequence[Checkpoint] = (),
        start: Checkpoint | None = None,
        on_start: CountFn | None,
        on_events: CountFn | None,
    ) -> ChainReport:
        """Download the events (after ``start``, which is sent too) and verify them here."""
        from airlock.services.audit_chain import ChainEvent, check_chain

        head = self.head()
        after = start.seq - 1 if start is not None else 0
        if on_start is not None:
            on_start(max(0, head.seq - after))
        events = (ChainEvent.from_dict(d) for d in self.client.audit_chain(after_seq=after))
        return check_chain(
            _counted(events, on_events),
            expected_head=expected_head,
            checkpoints=checkpoints,
            start=start,
            reaches=head,
        )


def _signing_key(path: Path | None) -> Ed25519PrivateKey:
    from airlock.services.checkpoints import own_key
    from airlock.services.signatures import load_private_key

    return load_private_key(path) if path is not None else own_key(laptop_key_path())


def _counted(events: Iterable[ChainEvent], on_events: CountFn | None) -> Iterator[ChainEvent]:
    if on_events is None:
        yield from events
        return
    n = 0
    for ev in events:
        yield ev
        n += 1
        if n == TICK:
            on_events(n)
            n = 0
    if n:
        on_events(n)


__all__ = ["AuditSide", "LocalAudit", "RemoteAudit", "laptop_key_path", "open_audit"]
