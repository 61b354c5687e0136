"""Content-addressed uploads and downloads: the REST side of a remote push and pull.

Like the Git LFS batch API: the client hashes its files, asks which blobs the
server lacks (``POST /blobs/batch``), uploads only those, streamed and resumable
(``PUT /blobs/{digest}`` with ``Content-Range``; ``GET /uploads/{digest}`` says how
many bytes arrived), each verified against its digest before it is visible, then
commits the manifest in one call (``POST /releases``: the registry's push rules).
``GET /blobs/{digest}`` streams a blob, with ``Range``. Uploading needs the role
that may push; reading any valid token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from airlock.api.deps import ActorDep, RegistryDep, WorkspaceDep
from airlock.core.digest import Digest, parse_digest, short
from airlock.core.manifest import CodeRef, Dataset, Notes
from airlock.core.roles import Action
from airlock.errors import InvalidInput, NotFound, PayloadTooLarge
from airlock.services.access import authorize
from airlock.services.ingest import StoredFile
from airlock.services.workspace import Workspace
from airlock.store.base import CHUNK
from airlock.store.uploads import Uploads, UploadState, uploads_for

UPLOAD_PREFIX = "/api/v1/blobs/"
MAX_BATCH = 100_000  # digests in one batch question
MAX_BLOB_BYTES = 1 << 40  # one file of a release: 1 TiB

router = APIRouter(prefix="/api/v1", tags=["blobs"])


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BlobIn(_In):
    digest: str = Field(description="sha256:<hex> of the file's bytes")
    size: int = Field(ge=0, le=MAX_BLOB_BYTES)


class BatchIn(_In):
    digests: list[BlobIn] = Field(max_length=MAX_BATCH)


class BlobState(BaseModel):
    digest: str
    size: int
    received: int = Field(description="bytes of a partial upload kept so far: continue there")
    upload_url: str | None = Field(
        default=None, description="a pre-signed URL to PUT the bytes to instead (object stores)"
    )


class BatchOut(BaseModel):
    missing: list[BlobState] = Field(description="upload these (from byte `received`)")
    present: list[str] = Field(description="already stored: nothing to send")


class UploadOut(BaseModel):
    digest: str
    size: int
    received: int
    complete: bool = Field(description="verified and stored (else: continue the upload)")

    @classmethod
    def of(cls, state: UploadState) -> UploadOut:
        return cls(
            digest=state.digest, size=state.size, received=state.received, complete=state.complete
        )


class FileIn(_In):
    path: str = Field(description="POSIX path inside the release")
    digest: str
    size: int = Field(ge=0, le=MAX_BLOB_BYTES)


class ReleaseIn(_In):
    name: str
    version: str
    files: list[FileIn] = Field(min_length=1, max_length=MAX_BATCH)
    notes: Notes | None = None
    datasets: list[Dataset] = Field(default_factory=list)
    components: dict[str, str] = Field(default_factory=dict)
    parent: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    code: CodeRef | None = None
    training_config: dict[str, Any] | None = None
    allow_pickle: bool = False


class PushOut(BaseModel):
    ref: str
    digest: str
    created: bool = Field(description="false: this version already held the same content")
    files: int
    bytes_total: int
    manifest: dict[str, Any]


def streams_upload(scope: MutableMapping[str, Any]) -> bool:
    """A blob upload: its body streams to staging, bounded by its declared size, not 1 MiB."""
    path = str(scope.get("path", ""))
    return scope.get("method") == "PUT" and path.startswith(UPLOAD_PREFIX)


def _uploads(ws: Workspace) -> Uploads:
    return uploads_for(ws.store, ws.home / "uploads")


def _digest(text: str) -> Digest:
    return parse_digest(text)


@router.post("/blobs/batch", response_model=BatchOut)
def blob_batch(body: BatchIn, ws: WorkspaceDep, who: ActorDep) -> BatchOut:
    """Which of these blobs the server lacks (a stored blob of another size counts as lacking)."""
    authorize(ws.db, who, Action.RELEASE_PUSH, "blobs")
    uploads = _uploads(ws)
    missing: list[BlobState] = []
    present: list[str] = []
    for item in body.digests:
        digest = _digest(item.digest)
        try:
            stored = ws.store.size(digest) if ws.store.has(digest) else None
        except NotFound:
            stored = None
        if stored == item.size:
            present.append(digest)
            continue
        presign = getattr(ws.store, "presign_upload", None)
        url = presign(digest, item.size) if presign is not None else None
        received = 0 if url else uploads.received(digest)
        missing.append(BlobState(digest=digest, size=item.size, received=received, upload_url=url))
    return BatchOut(missing=missing, present=present)


@router.get("/uploads/{digest}", response_model=UploadOut)
def upload_state(digest: str, ws: WorkspaceDep, who: ActorDep) -> Response:
    """How many bytes of an upload arrived (``Upload-Offset`` too); HEAD works alike."""
    d = _digest(digest)
    authorize(ws.db, who, Action.RELEASE_PUSH, short(d))
    received = _uploads(ws).received(d)
    complete = ws.store.has(d)
    size = ws.store.size(d) if complete else received
    out = UploadOut(digest=d, size=size, received=size if complete else received, complete=complete)
    return Response(
        out.model_dump_json(),
        media_type="application/json",
        headers={"Upload-Offset": str(out.received)},
    )


router.add_api_route("/uploads/{digest}", upload_state, methods=["HEAD"], include_in_schema=False)

_RANGE = re.compile(r"^bytes (\d+)-(\d+|\*)/(\d+)$")


def _content_range(header: str | None, length: str | None) -> tuple[int, int]:
    """(first byte, whole size) from ``Content-Range: bytes START-END/SIZE`` or the length."""
    if header is None:
        if length is None or not length.isdigit():
            raise InvalidInput(
                "an upload needs Content-Range: bytes START-END/SIZE (or a Content-Length)",
                hint="say where the bytes go and the blob's whole size",
            )
        return 0, int(length)
    found = _RANGE.match(header.strip())
    if found is None:
        raise InvalidInput(
            f"invalid Content-Range {header[:80]!r}", hint="write it as bytes START-END/SIZE"
        )
    start, size = int(found.group(1)), int(found.group(3))
    if size > MAX_BLOB_BYTES:
        raise PayloadTooLarge(
            f"a blob of {size} bytes is over the limit of {MAX_BLOB_BYTES} bytes",
            hint="split the file: one file of a release is at most 1 TiB",
        )
    return start, size


@router.put("/blobs/{digest}", response_model=UploadOut)
async def upload_blob(
    digest: str,
    request: Request,
    ws: WorkspaceDep,
    who: ActorDep,
    content_range: Annotated[str | None, Header()] = None,
    content_length: Annotated[str | None, Header()] = None,
) -> UploadOut:
    """Stream a blob's bytes (or the rest of them); stored only if they hash to ``digest``."""
    d = _digest(digest)
    await run_in_threadpool(authorize, ws.db, who, Action.RELEASE_PUSH, short(d))
    start, size = _content_range(content_range, content_length)
    if ws.store.has(d) and ws.store.size(d) == size:  # stored already: drain nothing, say so
        return UploadOut(digest=d, size=size, received=size, complete=True)
    upload = await run_in_threadpool(_uploads(ws).open, d, offset=start, size=size)
    try:
        pending: list[bytes] = []
        held = 0
        try:
            async for chunk in request.stream():
                pending.append(chunk)
                held += len(chunk)
                if held >= CHUNK or upload.received + held > size:  # over: refused at once
                    await run_in_threadpool(upload.write, b"".join(pending))
                    pending, held = [], 0
        except ClientDisconnect:
            pass  # what arrived is kept: the client continues from `received`
        if pending:
            await run_in_threadpool(upload.write, b"".join(pending))
        state = await run_in_threadpool(upload.finish)
    finally:
        upload.close()
    return UploadOut.of(state)


@router.post("/blobs/{digest}/complete", response_model=UploadOut)
def complete_upload(digest: str, ws: WorkspaceDep, who: ActorDep) -> UploadOut:
    """After a PUT to a pre-signed URL: hash what arrived in the bucket; keep it only if it matches."""
    d = _digest(digest)
    authorize(ws.db, who, Action.RELEASE_PUSH, short(d))
    complete = getattr(ws.store, "complete_upload", None)
    if complete is None or not complete(d):
        if ws.store.has(d):
            size = ws.store.size(d)
            return UploadOut(digest=d, size=size, received=size, complete=True)
        raise NotFound(
            f"no upload of blob {short(d)} to complete",
            hint="PUT the bytes to the upload_url the batch answer gave, then complete",
        )
    size = ws.store.size(d)
    return UploadOut(digest=d, size=size, received=size, complete=True)


_GET_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@router.get("/blobs/{digest}")
def download_blob(
    digest: str,
    ws: WorkspaceDep,
    _: ActorDep,
    range_: Annotated[str | None, Header(alias="range")] = None,
) -> StreamingResponse:
    """A blob's bytes, streamed (``Range: bytes=START-`` or ``START-END`` for a part)."""
    d = _digest(digest)
    size = ws.store.size(d)  # NotFound when missing
    start, end = 0, size - 1
    if range_ is not None:
        found = _GET_RANGE.match(range_.strip())
        if found is None or int(found.group(1)) > max(size - 1, 0):
            raise InvalidInput(
                f"invalid Range {range_[:80]!r} for a blob of {size} bytes",
                hint="write it as bytes=START- or bytes=START-END",
            )
        start = int(found.group(1))
        end = min(int(found.group(2)), size - 1) if found.group(2) else size - 1
    reader = ws.store.open(d)

    def body() -> Iterator[bytes]:
        with reader:
            skip = start
            while skip:  # stores stream from the start: read up to the range
                skip -= len(reader.read(min(skip, CHUNK)))
            left = end - start + 1
            while left > 0:
                chunk = reader.read(min(left, CHUNK))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes"}
    status = 200
    if range_ is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        body(), status_code=status, media_type="application/octet-stream", headers=headers
    )


@router.post("/releases", response_model=PushOut, status_code=201)
def commit_release(body: ReleaseIn, reg: RegistryDep, who: ActorDep) -> PushOut:
    """Record release NAME@VERSION from uploaded blobs (the same rules as a local push)."""
    files = [StoredFile(f.path, _digest(f.digest), f.size) for f in body.files]
    result = reg.push_stored(
        files,
        name=body.name,
        version=body.version,
        actor=who,
        notes=body.notes,
        datasets=body.datasets,
        components=body.components,
        parent=body.parent,
        metrics=body.metrics,
        code=body.code,
        training_config=body.training_config,
        allow_pickle=body.allow_pickle,
    )
    return PushOut(
        ref=result.ref,
        digest=result.digest,
        created=result.created,
        files=result.files,
        bytes_total=result.bytes_total,
        manifest=result.manifest.to_json_dict(),
    )
