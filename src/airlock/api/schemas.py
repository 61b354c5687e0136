"""Request and response bodies of the registry and audit routes (pydantic, frozen).

Response bodies are derived from the services' values (:mod:`airlock.api.derive`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from airlock.api.derive import From, Out
from airlock.core.records import Alias, AliasMove, ModelSummary, Release
from airlock.services.audit_views import ChainHead, Event
from airlock.services.lineage import Edge, Node
from airlock.services.promotion import AliasResult
from airlock.services.registry import VerifyReport


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class ModelOut(Out):
    __value__ = From(
        ModelSummary, exclude={"id", "created_at"}, rename={"release_count": "releases"}
    )
    aliases: dict[str, str] = Field(description="alias -> version")


class ReleaseSummary(Out):
    __value__ = From(
        Release,
        exclude={"id", "content_key", "manifest_json"},
        rename={"model": "name"},
        first=("ref",),
    )
    ref: str
    aliases: list[str]


class ReleaseOut(ReleaseSummary):
    manifest: dict[str, Any]


class AliasOut(Out):
    __value__ = From(Alias, exclude={"release_id"}, rename={"name": "alias"})


class AliasMoveIn(_Body):
    release: str = Field(description="a version or any release reference of the same model")
    reason: str = Field(min_length=1)


class AliasMoveOut(Out):
    __value__ = From(AliasResult)


class AliasHistoryOut(Out):
    __value__ = From(AliasMove)


class EventOut(Out):
    __value__ = From(Event)


class EventPage(_Body):
    events: list[EventOut]
    next_after_seq: int | None = Field(description="pass as after_seq for the next page")


class ChainOut(_Body):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problem: dict[str, Any] | None


class ChainHeadOut(Out):
    __value__ = From(ChainHead)


class VerifyOut(Out):
    __value__ = From(VerifyReport, first=("ok",))
    ok: bool


class LineageNode(Out):
    __value__ = From(Node)


class LineageEdge(Out):
    __value__ = From(Edge)


class LineageOut(_Body):
    release: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
