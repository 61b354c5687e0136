"""Keyset pages over REST: ``?limit=&cursor=`` in, the next cursor out.

A list endpoint keeps its JSON array body (clients of v1 read arrays) and says where the
next page is in two headers: ``Link: <…?cursor=…>; rel="next"`` (RFC 8288) and
``X-Next-Cursor``; both are absent on the last page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from airlock.core.paging import DEFAULT_LIMIT, MAX_LIMIT

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"page size (at most {MAX_LIMIT})")
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=2048, description="the X-Next-Cursor of the previous page"),
]
DEFAULT = DEFAULT_LIMIT


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """Point the response at the next page, if there is one."""
    if cursor is None:
        return
    url = request.url.include_query_params(cursor=cursor)
    response.headers["Link"] = f'<{url}>; rel="next"'
    response.headers["X-Next-Cursor"] = cursor
