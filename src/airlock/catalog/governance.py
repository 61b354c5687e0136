"""SQL for governance: API tokens, policies, approvals, trusted keys, signatures, eval runs.

Every function takes an open connection; the services layer owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as DuplicateKey

from airlock.catalog.keyset import past
from airlock.catalog.schema import (
    api_tokens,
    approvals,
    eval_runs,
    models,
    policies,
    releases,
    signatures,
    trusted_keys,
)
from airlock.core.records import (
    Approval,
    EvalRunSummary,
    PolicyVersion,
    SignatureRecord,
    TrustedKey,
)

_T = TypeVar("_T")


def _make(cls: type[_T], row: Any) -> _T:
    return cls(*tuple(row))


# -- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredToken:
    id: str
    user: str
    role: str
    secret_hash: str
    note: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


_TOKEN_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.username,
    api_tokens.c.role,
    api_tokens.c.secret_hash,
    api_tokens.c.note,
    api_tokens.c.created_at,
    api_tokens.c.created_by,
    api_tokens.c.expires_at,
    api_tokens.c.revoked_at,
    api_tokens.c.revoked_by,
)


def _token(r: Any) -> StoredToken:
    return _make(StoredToken, r)


def insert_token(conn: Connection, row: StoredToken) -> None:
    conn.execute(
        insert(api_tokens).values(
            id=row.id,
            username=row.user,
            role=row.role,
            secret_hash=row.secret_hash,
            note=row.note,
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
        )
    )


def token(conn: Connection, token_id: str) -> StoredToken | None:
    r = conn.execute(select(*_TOKEN_COLUMNS).where(api_tokens.c.id == token_id)).first()
    return _token(r) if r else None


def tokens(conn: Connection, *, user: str | None = None) -> list[StoredToken]:
    q = select(*_TOKEN_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if user is not None:
        q = q.where(api_tokens.c.username == user)
    return [_token(r) for r in conn.execute(q).all()]


def token_page(
    conn: Connection,
    *,
    user: str | None = None,
    active_at: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> list[StoredToken]:
    """Up to ``limit`` tokens in creation order after the (created_at, id) ``after``;
    ``active_at``: only those neither revoked nor expired then (filtered here, so a page is
    full). Tokens are few (people and automations), so no index of their own is needed."""
    t = api_tokens.c
    q = select(*_TOKEN_COLUMNS).order_by(t.created_at, t.id).limit(limit)
    if user is not None:
        q = q.where(t.username == user)
    if active_at is not None:
        q = q.where(t.revoked_at.is_(None), or_(t.expires_at.is_(None), t.expires_at > active_at))
    if after is not None:
        at, last = after
        q = q.where(or_(t.created_at > at, and_(t.created_at == at, t.id > last)))
    return [_token(r) for r in conn.execute(q).all()]


def token_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(api_tokens)).scalar_one())


def revoke_token(conn: Connection, token_id: str, *, by: str, at: datetime) -> bool:
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_by=by)
    )
    return bool(result.rowcount)


# -- policies -----------------------------------------------------------------------------


_POLICY_COLUMNS = (
    policies.c.id,
    policies.c.name,
    policies.c.version,
    policies.c.document,
    policies.c.digest,
    policies.c.reason,
    policies.c.created_at,
    policies.c.created_by,
    policies.c.event_seq,
)


def latest_policy(conn: Connection, name: str) -> PolicyVersion | None:
    r = conn.execute(
        select(*_POLICY_COLUMNS)
        .where(policies.c.name == name)
        .order_by(policies.c.version.desc())
        .limit(1)
    ).first()
    return _make(PolicyVersion, r) if r else None


def policy_version(conn: Connection, name: str, version: int) -> PolicyVersion | None:
    r = conn.execute(
        select(*_POLICY_COLUMNS).where(policies.c.name == name, policies.c.version == version)
    ).first()
    return _make(PolicyVersion, r) if r else None


def policy_history(
    conn: Connection,
    name: str | None = None,
    *,
    after: tuple[str, int] | None = None,
    limit: int | None = None,
) -> list[PolicyVersion]:
    """Policy versions by name then version, after the (name, version) ``after``, at most
    ``limit`` (uq_policies_name_version serves the order)."""
    p = policies.c
    q = select(*_POLICY_COLUMNS).order_by(p.name, p.version).limit(limit)
    if name is not None:
        q = q.where(p.name == name)
    if after is not None:
        q = q.where(past([p.name, p.version], after))
    return [_make(PolicyVersion, r) for r in conn.execute(q).all()]


def insert_policy(
    conn: Connection,
    *,
    name: str,
    version: int,
    document: str,
    digest: str,
    reason: str,
    at: datetime,
    by: str,
    event_seq: int,
) -> None:
    conn.execute(
        insert(policies).values(
            name=name,
            version=version,
            document=document,
            digest=digest,
            reason=reason,
            created_at=at,
            created_by=by,
            event_seq=event_seq,
        )
    )


# -- approvals ----------------------------------------------------------------------------


_APPROVAL_COLUMNS = (
    approvals.c.id,
    approvals.c.release_id,
    approvals.c.release_digest,
    approvals.c.stage,
    approvals.c.decision,
    approvals.c.actor,
    approvals.c.role,
    approvals.c.comment,
    approvals.c.at,
    approvals.c.event_seq,
)


class DecisionRaced(Exception):
    """Another transaction recorded this person's next decision on the release and stage."""


def insert_approval(
    conn: Connection,
    *,
    release_id: int,
    release_digest: str,
    stage: str,
    decision: str,
    actor: str,
    role: str,
    comment: str,
    at: datetime,
    event_seq: int,
) -> int:
    """Record one decision as this person's next turn; ``DecisionRaced`` if it was taken."""
    last_turn = conn.execute(
        select(func.max(approvals.c.turn)).where(
            approvals.c.release_id == release_id,
            approvals.c.stage == stage,
            approvals.c.actor == actor,
        )
    ).scalar_one()
    try:
        return int(
            conn.execute(
                insert(approvals)
                .values(
                    release_id=release_id,
                    release_digest=release_digest,
                    stage=stage,
                    decision=decision,
                    actor=actor,
                    role=role,
                    comment=comment,
                    at=at,
                    event_seq=event_seq,
                    turn=(last_turn or 0) + 1,
                )
                .returning(approvals.c.id)
            ).scalar_one()
        )
    except DuplicateKey as exc:
        raise DecisionRaced(f"{actor} on release {release_id} for {stage}") from exc


def approvals_of(
    conn: Connection,
    release_id: int,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> list[Approval]:
    """A release's decisions oldest first, after the (at, id) ``after``, at most ``limit``
    (through ix_approvals_release_at)."""
    a = approvals.c
    q = select(*_APPROVAL_COLUMNS).where(a.release_id == release_id)
    if after is not None:
        q = q.where(past([a.at, a.id], after))
    rows = conn.execute(q.order_by(a.at, a.id).limit(limit)).all()
    return [_make(Approval, r) for r in rows]


# -- trusted keys and signatures ------------------------------------------------------------


_KEY_COLUMNS = (
    trusted_keys.c.key_id,
    trusted_keys.c.name,
    trusted_keys.c.public_key,
    trusted_keys.c.added_at,
    trusted_keys.c.added_by,
    trusted_keys.c.revoked_at,
    trusted_keys.c.revoked_by,
)


def insert_key(
    conn: Connection, *, key_id: str, name: str, public_key: str, at: datetime, by: str
) -> None:
    conn.execute(
        insert(trusted_keys).values(
            key_id=key_id, name=name, public_key=public_key, added_at=at, added_by=by
        )
    )


def key(conn: Connection, key_id: str) -> TrustedKey | None:
    r = conn.execute(select(*_KEY_COLUMNS).where(trusted_keys.c.key_id == key_id)).first()
    return _make(TrustedKey, r) if r else None


def key_by_name(conn: Connection, name: str) -> TrustedKey | None:
    r = conn.execute(select(*_KEY_COLUMNS).where(trusted_keys.c.name == name)).first()
    return _make(TrustedKey, r) if r else None


def keys(
    conn: Connection, *, after: tuple[datetime, str] | None = None, limit: int | None = None
) -> list[TrustedKey]:
    """Trusted (and revoked) keys in the order they were added, after the (added_at, key_id)
    ``after``, at most ``limit`` (through ix_trusted_keys_added_at)."""
    k = trusted_keys.c
    q = select(*_KEY_COLUMNS).order_by(k.added_at, k.key_id).limit(limit)
    if after is not None:
        q = q.where(past([k.added_at, k.key_id], after))
    rows = conn.execute(q).all()
    return [_make(TrustedKey, r) for r in rows]


def revoke_key(conn: Connection, key_id: str, *, by: str, at: datetime) -> bool:
    result = conn.execute(
        update(trusted_keys)
        .where(trusted_keys.c.key_id == key_id, trusted_keys.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_by=by)
    )
    return bool(result.rowcount)


_SIGNATURE_COLUMNS = (
    signatures.c.id,
    signatures.c.release_id,
    signatures.c.release_digest,
    signatures.c.key_id,
    signatures.c.bundle,
    signatures.c.signed_by,
    signatures.c.at,
    signatures.c.event_seq,
)


def insert_signature(
    conn: Connection,
    *,
    release_id: int,
    release_digest: str,
    key_id: str,
    bundle: str,
    signed_by: str,
    at: datetime,
    event_seq: int,
) -> None:
    conn.execute(
        insert(signatures).values(
            release_id=release_id,
            release_digest=release_digest,
            key_id=key_id,
            bundle=bundle,
            signed_by=signed_by,
            at=at,
            event_seq=event_seq,
        )
    )


def signatures_of(conn: Connection, release_id: int) -> list[SignatureRecord]:
    rows = conn.execute(
        select(*_SIGNATURE_COLUMNS)
        .where(signatures.c.release_id == release_id)
        .order_by(signatures.c.at, signatures.c.id)
    ).all()
    return [_make(SignatureRecord, r) for r in rows]


# -- evaluation runs ------------------------------------------------------------------------


_EVAL_COLUMNS = (
    eval_runs.c.id,
    eval_runs.c.release_id,
    (models.c.name + "@" + releases.c.version).label("release_ref"),
    eval_runs.c.suite,
    eval_runs.c.suite_digest,
    eval_runs.c.baseline_release_id,
    eval_runs.c.cases,
    eval_runs.c.pass_rate,
    eval_runs.c.mean_score,
    eval_runs.c.baseline_pass_rate,
    eval_runs.c.p_value,
    eval_runs.c.result,
    eval_runs.c.actor,
    eval_runs.c.started_at,
    eval_runs.c.finished_at,
    eval_runs.c.event_seq,
)


def _eval_select() -> Any:
    return (
        select(*_EVAL_COLUMNS)
        .join(releases, releases.c.id == eval_runs.c.release_id)
        .join(models, models.c.id == releases.c.model_id)
    )


def insert_eval_run(conn: Connection, **values: Any) -> int:
    return int(
        conn.execute(insert(eval_runs).values(**values).returning(eval_runs.c.id)).scalar_one()
    )


def set_eval_event(conn: Connection, run_id: int, event_seq: int) -> None:
    conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(event_seq=event_seq))


def eval_runs_of(
    conn: Connection, release_id: int, *, after: int | None = None, limit: int | None = None
) -> list[EvalRunSummary]:
    """A release's runs oldest first, after the run id ``after``, at most ``limit`` (through
    ix_eval_runs_release_id)."""
    q = _eval_select().where(eval_runs.c.release_id == release_id)
    if after is not None:
        q = q.where(eval_runs.c.id > after)
    rows = conn.execute(q.order_by(eval_runs.c.id).limit(limit)).all()
    return [_make(EvalRunSummary, r) for r in rows]


def eval_run(conn: Connection, run_id: int) -> EvalRunSummary | None:
    r = conn.execute(_eval_select().where(eval_runs.c.id == run_id)).first()
    return _make(EvalRunSummary, r) if r else None


def latest_eval_runs(conn: Connection, release_id: int) -> dict[str, EvalRunSummary]:
    """The newest run of each suite on a release."""
    latest: dict[str, EvalRunSummary] = {}
    for run in eval_runs_of(conn, release_id):
        latest[run.suite] = run
    return latest
