"""Request and response bodies of the REST API (pydantic, frozen)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class ModelOut(_Body):
    name: str
    releases: int
    aliases: dict[str, str] = Field(description="alias -> version")


class ReleaseSummary(_Body):
    ref: str
    name: str
    version: str
    digest: str
    author: str
    created_at: datetime
    total_size: int
    file_count: int
    parameters: int | None
    has_pickle: bool
    aliases: list[str]


class ReleaseOut(ReleaseSummary):
    manifest: dict[str, Any]


class AliasOut(_Body):
    model: str
    alias: str
    version: str
    updated_at: datetime
    updated_by: str


class AliasMoveIn(_Body):
    release: str = Field(description="a version or any release reference of the same model")
    reason: str = Field(min_length=1)


class AliasMoveOut(_Body):
    model: str
    alias: str
    from_version: str | None
    to_version: str
    moved: bool


class AliasHistoryOut(_Body):
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    at: datetime
    event_seq: int | None


class EventOut(_Body):
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class EventPage(_Body):
    events: list[EventOut]
    next_after_seq: int | None = Field(description="pass as after_seq for the next page")


class ChainOut(_Body):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problem: dict[str, Any] | None


class VerifyOut(_Body):
    ok: bool
    checked: int
    bytes: int
    damaged: dict[str, list[str]]
    missing: dict[str, list[str]]
    tampered: dict[str, str] = {}  # release ref -> why its catalog row is not what was pushed


class LineageNode(_Body):
    id: str
    kind: str  # release | dataset | component | code
    label: str


class LineageEdge(_Body):
    source: str
    target: str
    label: str


class LineageOut(_Body):
    release: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
