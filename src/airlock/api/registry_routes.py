"""REST routes over releases, aliases, lineage and integrity."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from airlock.api.deps import ActorDep, RegistryDep
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.api.schemas import (
    AliasHistoryOut,
    AliasMoveIn,
    AliasMoveOut,
    AliasOut,
    LineageEdge,
    LineageNode,
    LineageOut,
    ModelOut,
    ReleaseOut,
    ReleaseSummary,
    VerifyOut,
)
from airlock.errors import InvalidInput
from airlock.services.lineage import lineage

router = APIRouter(prefix="/api/v1", tags=["releases"])


@router.get("/models", response_model=list[ModelOut])
def list_models(
    request: Request,
    response: Response,
    reg: RegistryDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[ModelOut]:
    """Models by name with their release counts and aliases, a page at a time (the next
    page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = reg.model_page(limit=limit, cursor=cursor)
    names = {m.name for m in page.items}
    aliases = [a for a in reg.aliases() if a.model in names]
    link_next(request, response, page.next_cursor)
    return [
        ModelOut.of(m, aliases={a.name: a.version for a in aliases if a.model == m.name})
        for m in page.items
    ]


@router.get("/models/{model}/releases", response_model=list[ReleaseSummary])
def list_releases(
    model: str,
    request: Request,
    response: Response,
    reg: RegistryDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[ReleaseSummary]:
    """A model's releases, oldest version first, a page at a time (the next page: the
    ``Link``/``X-Next-Cursor`` headers)."""
    page = reg.release_page(model, limit=limit, cursor=cursor)
    by_release: dict[int, list[str]] = {}
    for a in reg.aliases(model):
        by_release.setdefault(a.release_id, []).append(a.name)
    link_next(request, response, page.next_cursor)
    return [ReleaseSummary.of(r, aliases=by_release.get(r.id, [])) for r in page.items]


@router.get("/releases/{ref}", response_model=ReleaseOut)
def show_release(ref: str, reg: RegistryDep, _: ActorDep) -> ReleaseOut:
    """A release's manifest: files, components, lineage, metrics, notes."""
    view = reg.show(ref)
    return ReleaseOut.of(
        view.row, aliases=list(view.aliases), manifest=view.manifest.to_json_dict()
    )


@router.get("/releases/{ref}/diff")
def diff_release(
    ref: str,
    reg: RegistryDep,
    _: ActorDep,
    against: str = Query(description="the earlier release"),
) -> dict[str, Any]:
    """What changed from ``against`` to ``ref``."""
    diff, _old, _new = reg.diff(against, ref)
    return dataclasses.asdict(diff)


@router.get("/releases/{ref}/lineage", response_model=LineageOut)
def release_lineage(ref: str, reg: RegistryDep, _: ActorDep) -> LineageOut:
    """Datasets → release → components → parent, following parents back to the first."""
    walk = lineage(reg, ref)
    nodes, edges = walk.graph()
    return LineageOut(
        release=walk.release.ref,
        nodes=[LineageNode.of(n) for n in nodes],
        edges=[LineageEdge.of(e) for e in edges],
    )


@router.get("/models/{model}/aliases", response_model=list[AliasOut])
def list_aliases(model: str, reg: RegistryDep, _: ActorDep) -> list[AliasOut]:
    return [AliasOut.of(a) for a in reg.aliases(model)]


@router.put("/models/{model}/aliases/{alias}", response_model=AliasMoveOut)
def move_alias(
    model: str, alias: str, body: AliasMoveIn, reg: RegistryDep, who: ActorDep
) -> AliasMoveOut:
    """Point an alias at a release of the same model (audited; policy-gated)."""
    ref = body.release if "@" in body.release or body.release.startswith("sha256:") else None
    ref = ref or f"{model}@{body.release}"
    row = reg.resolve(ref)
    if row.model != model:
        raise InvalidInput(
            f"{row.ref} is not a release of {model}", hint=f"give a version of {model}"
        )
    result = reg.set_alias(alias, row.ref, actor=who, reason=body.reason)
    return AliasMoveOut.of(result)


@router.get("/models/{model}/aliases/{alias}/history", response_model=list[AliasHistoryOut])
def alias_history(
    model: str,
    alias: str,
    request: Request,
    response: Response,
    reg: RegistryDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[AliasHistoryOut]:
    """The alias's moves, oldest first, a page at a time (the next page: the
    ``Link``/``X-Next-Cursor`` headers)."""
    page = reg.alias_history_page(model, alias, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [AliasHistoryOut.of(m) for m in page.items]


@router.post("/verify", response_model=VerifyOut)
def verify_store(
    reg: RegistryDep,
    _: ActorDep,
    ref: str | None = Query(None, description="only this release (default: the whole store)"),
) -> VerifyOut:
    """Re-hash stored blobs; name damaged or missing ones and the releases using them."""
    report = reg.verify(ref)
    return VerifyOut.of(report)
