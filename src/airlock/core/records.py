"""The stored things the services hand out: releases, models, aliases, policies, approvals,
trusted keys, signatures and evaluation runs, as frozen values.

The catalog maps its rows to these; nothing above the catalog sees a database row. The API
derives its response models from these classes (``airlock.api.schemas``), so a field added
here shows in the JSON without a second list to keep in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airlock.core.digest import Digest

if TYPE_CHECKING:
    from airlock.core.manifest import Manifest
    from airlock.core.policy import ApprovalFact


@dataclass(frozen=True, slots=True)
class Release:
    """One immutable release (``name@version``) with its canonical manifest text."""

    id: int
    model: str
    version: str
    digest: Digest
    content_key: str
    author: str
    created_at: datetime
    total_size: int
    file_count: int
    parameters: int | None
    has_pickle: bool
    manifest_json: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def manifest(self) -> Manifest:
        from airlock.core.manifest import manifest_from_json  # pydantic: only when read

        return manifest_from_json(self.manifest_json)


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """A model name and how many releases it has."""

    id: int
    name: str
    created_at: datetime
    release_count: int


@dataclass(frozen=True, slots=True)
class Alias:
    """Where an alias of a model points now, and who moved it last."""

    model: str
    name: str
    release_id: int
    version: str
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class AliasMove:
    """One entry of an alias's history (``to_version`` is None for a removal)."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    at: datetime
    event_seq: int | None


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version of a named policy document."""

    id: int
    name: str
    version: int
    document: str
    digest: str
    reason: str
    created_at: datetime
    created_by: str
    event_seq: int | None


@dataclass(frozen=True, slots=True)
class Approval:
    """One approve/reject decision on a release for a stage."""

    id: int
    release_id: int
    release_digest: str
    stage: str
    decision: str
    actor: str
    role: str
    comment: str
    at: datetime
    event_seq: int | None

    def fact(self) -> ApprovalFact:
        """The decision as the policy weighs it."""
        from airlock.core.policy import ApprovalFact  # pydantic models: only when judged

        return ApprovalFact(
            actor=self.actor,
            role=self.role,
            decision="approve" if self.decision == "approve" else "reject",
            stage=self.stage,
            at=self.at,
            comment=self.comment,
        )


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key whose signatures count, until it is revoked."""

    key_id: str
    name: str
    public_key: str
    added_at: datetime
    added_by: str
    revoked_at: datetime | None
    revoked_by: str | None


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    """A stored signature bundle over a release's digest."""

    id: int
    release_id: int
    release_digest: str
    key_id: str
    bundle: str
    signed_by: str
    at: datetime
    event_seq: int | None


@dataclass(frozen=True, slots=True)
class EvalRunSummary:
    """The stored summary of one evaluation run (``result`` holds the full JSON record)."""

    id: int
    release_id: int
    release_ref: str
    suite: str
    suite_digest: str
    baseline_release_id: int | None
    cases: int
    pass_rate: float
    mean_score: float
    baseline_pass_rate: float | None
    p_value: float | None
    result: str
    actor: str
    started_at: datetime
    finished_at: datetime
    event_seq: int | None

    def document(self) -> dict[str, Any]:
        """The stored record of the run (summary, comparison, every case) as JSON values."""
        record: dict[str, Any] = json.loads(self.result)
        return record

    @property
    def baseline(self) -> str | None:
        """The baseline release the run compared with, by reference, as it was stored."""
        ref = self.document().get("baseline")
        return str(ref) if ref else None


__all__ = [
    "Alias",
    "AliasMove",
    "Approval",
    "EvalRunSummary",
    "ModelSummary",
    "PolicyVersion",
    "Release",
    "SignatureRecord",
    "TrustedKey",
]
