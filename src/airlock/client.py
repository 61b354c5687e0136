"""A small Python SDK for the Airlock REST API.

::

    import airlock

    with airlock.Client("http://127.0.0.1:8080", token="alk_...") as api:
        api.approve("chat@1.1.0", stage="production", comment="evals look good")
        rollout = api.start_rollout("chat", candidate="chat@1.1.0", spec={...})
        api.rollback("chat", reason="users complain")

``push(folder, name=..., version=...)`` and ``pull(ref, dest)`` move releases
content-addressed (docs/remote.md): only blobs the server lacks are uploaded,
streamed and resumable, each verified by the server; a pull verifies every byte.
They return the same values as the local registry (``PushResult``, ``PullResult``).
Every other method returns the JSON the API answers (dicts and lists; release notes
are text). An error answer is raised as the matching class of Airlock's error
tree — ``NotFound``, ``Forbidden``, ``PolicyViolation`` … — with the server's
message and hint, so ``except airlock.PolicyViolation`` works the same against
the library and against a remote server. A server that cannot be reached raises
``ServiceUnavailable``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from airlock.core.paging import MAX_LIMIT
from airlock.errors import (
    AirlockError,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    ServiceUnavailable,
    Unauthorized,
    UnsafeArtifact,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from airlock.core.manifest import CodeRef, Dataset, Notes
    from airlock.services.feedback_export import ExportResult
    from airlock.services.ingest import SourceFile
    from airlock.services.registry import PullResult, PushResult

ProgressFn = Callable[[int], None]
CHUNK = 4 << 20
UPLOAD_WORKERS = 4
RETRIES = 5


def cache_dir() -> Path:
    """Where the SDK keeps its hash cache (``$XDG_CACHE_HOME/airlock``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airlock"


_ERRORS: dict[str, type[AirlockError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        NotFound,
        Conflict,
        Forbidden,
        PolicyViolation,
        IntegrityError,
        UnsafeArtifact,
        ServiceUnavailable,
        PayloadTooLarge,
        Unauthorized,
    )
}
_BY_STATUS: dict[int, type[AirlockError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: PolicyViolation,
    503: ServiceUnavailable,
}


def error_from_response(response: httpx.Response) -> AirlockError:
    """The Airlock error an API error answer stands for."""
    try:
        body = response.json()
        err = body["error"]
        code, message, hint = str(err["code"]), str(err["message"]), str(err.get("hint", ""))
    except (ValueError, KeyError, TypeError):
        code, message, hint = "", response.text[:500] or response.reason_phrase, ""
    cls = _ERRORS.get(code) or _BY_STATUS.get(response.status_code, AirlockError)
    return cls(message or f"HTTP {response.status_code}", hint=hint or None)


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class Client:
    """Talk to an Airlock server (``airlock serve``) as the holder of ``token``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        if http is None:
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        else:
            self._http = http
            self._http.headers.update(headers)
        self._owned = http is None

    # -- plumbing ---------------------------------------------------------------------
    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One API call; an error answer raises the matching ``AirlockError``."""
        try:
            response = self._http.request(method, path, params=_clean(params or {}), json=json)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"cannot reach the Airlock server at {self.base_url}: {exc}",
                hint="start it with `airlock serve`, or check the URL",
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def page(
        self, path: str, *, limit: int = 50, cursor: str | None = None, **given: Any
    ) -> tuple[list[Any], str | None]:
        """One page of a paged list (``given``: its filters, e.g. ``service=``) and the cursor
        of the next (None: the last page)."""
        params: dict[str, Any] = {**given, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = self.request("GET", path, params=params)
        return list(response.json()), response.headers.get("X-Next-Cursor") or None

    def _get_all(self, path: str, *, page_size: int = 1000, **given: Any) -> list[Any]:
        """Every item of a paged list: follows ``X-Next-Cursor`` until the last page."""
        items: list[Any] = []
        params: dict[str, Any] = {**given, "limit": page_size}
        while True:
            response = self.request("GET", path, params=params)
            items.extend(response.json())
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor:
                return items
            params = {**given, "limit": page_size, "cursor": cursor}

    def _get_first(self, path: str, count: int, **given: Any) -> list[Any]:
        """The first ``count`` items of a paged list (all of them when ``count`` is 0),
        following ``X-Next-Cursor`` only as far as needed."""
        if count <= 0:
            return self._get_all(path, **given)
        items: list[Any] = []
        cursor: str | None = None
        while len(items) < count:
            batch, cursor = self.page(
                path, limit=min(count - len(items), MAX_LIMIT), cursor=cursor, **given
            )
            items.extend(batch)
            if cursor is None:
                break
        return items[:count]

    def _post(self, path: str, body: Mapping[str, Any] | None = None, **params: Any) -> Any:
        return self.request("POST", path, params=params, json=_clean(body or {})).json()

    # -- who and what -------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return dict(self._get("/api/v1/whoami"))

    def ready(self) -> dict[str, Any]:
        """The server's readiness report (``/readyz``)."""
        response = self._http.get("/readyz")
        if response.status_code not in (200, 503):
            raise error_from_response(response)
        return dict(response.json())

    # -- registry -------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        return self._get_all("/api/v1/models")

    def releases(self, model: str) -> list[dict[str, Any]]:
        return self._get_all(f"/api/v1/models/{model}/releases")

    def release(self, ref: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}"))

    def diff(self, ref: str, against: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}/diff", against=against))

    def lineage(self, ref: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}/lineage"))

    def notes(self, ref: str, *, stage: str = "production", against: str | None = None) -> str:
        params = {"stage": stage, "against": against}
        return self.request("GET", f"/api/v1/releases/{ref}/notes", params=params).text

    def aliases(self, model: str) -> list[dict[str, Any]]:
        return list(self._get(f"/api/v1/models/{model}/aliases"))

    def set_alias(self, model: str, alias: str, release: str, *, reason: str) -> dict[str, Any]:
        body = {"release": release, "reason": reason}
        return dict(
            self.request("PUT", f"/api/v1/models/{model}/aliases/{alias}", json=body).json()
        )

    def alias_history(self, model: str, alias: str) -> list[dict[str, Any]]:
        return self._get_all(f"/api/v1/models/{model}/aliases/{alias}/history")

    def verify_store(self, ref: str | None = None) -> dict[str, Any]:
        return dict(self._post("/api/v1/verify", ref=ref))

    # -- content-addressed push and pull ------------------------------------------------------
    def push(
        self,
        path: Path | Sequence[SourceFile],
        *,
        name: str,
        version: str,
        notes: Notes | None = None,
        datasets: Sequence[Dataset] = (),
        components: Mapping[str, str] | None = None,
        parent: str | None = None,
        metrics: Mapping[str, float] | None = None,
        code: CodeRef | None = None,
        training_config: Mapping[str, Any] | None = None,
        allow_pickle: bool = False,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> PushResult:
        """Push a folder (or listed files) as ``name@version``: only the blobs the server lacks travel.

        The files are checked and hashed here (with the local hash cache), the
        server says which digests it lacks, those are uploaded (streamed, resumed
        after a dropped connection, verified by the server), then the manifest is
        committed in one call under the same rules as a local push.
        ``on_start``/``on_bytes`` report the bytes to upload.
        """
        from airlock.core.manifest import Manifest
        from airlock.core.names import check_name
        from airlock.core.semver import Version
        from airlock.services.hashcache import HashCache
        from airlock.services.ingest import check_sources, hash_files, inspect_formats, scan_folder
        from airlock.services.registry import PushResult

        started = time.perf_counter()
        check_name(name)  # what the server would refuse, refused before any hashing
        Version.parse(version)
        files = scan_folder(path) if isinstance(path, Path) else list(path)
        check_sources(files)
        inspect_formats(files, allow_pickle=allow_pickle)  # refused here, before any upload
        cache = HashCache(cache_dir() / "hashes.json")
        digests, hashed = hash_files(files, workers=os.cpu_count() or 1, cache=cache)
        cache.save()
        wanted: dict[str, SourceFile] = dict(zip(digests, files, strict=True))
        batch = self._post(
            "/api/v1/blobs/batch",
            {"digests": [{"digest": d, "size": f.size} for d, f in wanted.items()]},
        )
        missing = [(m["digest"], int(m["received"])) for m in batch["missing"]]
        signed = {m["digest"]: m["upload_url"] for m in batch["missing"] if m.get("upload_url")}
        to_send = sum(wanted[d].size - received for d, received in missing)
        if on_start is not None:
            on_start(to_send)
        sent = [0]
        counting = threading.Lock()

        def count(n: int) -> None:
            with counting:
                sent[0] += n
            if on_bytes is not None:
                on_bytes(n)

        def upload(item: tuple[str, int]) -> None:
            digest, offset = item
            if digest in signed:
                self._upload_signed(digest, wanted[digest], signed[digest], count)
            else:
                self._upload(digest, wanted[digest], offset, count)

        with ThreadPoolExecutor(max_workers=max(1, min(UPLOAD_WORKERS, len(missing)))) as pool:
            list(pool.map(upload, missing))
        body = {
            "name": name,
            "version": version,
            "files": [
                {"path": f.rel, "digest": d, "size": f.size}
                for d, f in zip(digests, files, strict=True)
            ],
            "notes": notes.model_dump(mode="json") if notes is not None else None,
            "datasets": [d.model_dump(mode="json", exclude_none=True) for d in datasets],
            "components": dict(components or {}),
            "parent": parent,
            "metrics": dict(metrics or {}),
            "code": code.model_dump(mode="json") if code is not None else None,
            "training_config": dict(training_config) if training_config is not None else None,
            "allow_pickle": allow_pickle,
        }
        out = self._post("/api/v1/releases", body)
        manifest = Manifest.model_validate(out["manifest"])
        return PushResult(
            ref=out["ref"],
            digest=out["digest"],
            created=bool(out["created"]),
            files=int(out["files"]),
            bytes_total=int(out["bytes_total"]),
            bytes_read=hashed,
            bytes_new=sent[0],
            seconds=time.perf_counter() - started,
            manifest=manifest,
        )

    def upload_offset(self, digest: str) -> int:
        """Bytes of ``digest`` the server holds from an earlier, broken upload."""
        return int(self._get(f"/api/v1/uploads/{digest}")["received"])

    def _upload(self, digest: str, f: SourceFile, offset: int, count: ProgressFn) -> None:
        """PUT the file's bytes from ``offset``; after a dropped connection ask and continue."""
        failures = 0
        while True:
            try:
                state = self._put_from(digest, f, offset, count)
            except ServiceUnavailable:
                failures += 1
                if failures > RETRIES:
                    raise
                time.sleep(min(0.2 * 2**failures, 5.0))
                offset = self.upload_offset(digest)
                continue
            if state["complete"]:
                return
            offset = int(state["received"])  # the server kept a part: continue there

    def _upload_signed(self, digest: str, f: SourceFile, url: str, count: ProgressFn) -> None:
        """PUT the file straight to the object store, then have the server verify it."""
        failures = 0
        while True:
            sent = 0

            def chunks() -> Iterator[bytes]:
                nonlocal sent
                with f.path.open("rb") as stream:
                    while chunk := stream.read(1 << 20):
                        yield chunk
                        sent += len(chunk)
                        count(len(chunk))

            try:  # a plain request: the URL carries its own signature, not our token
                response = httpx.put(
                    url, content=chunks(), headers={"Content-Length": str(f.size)}, timeout=None
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > RETRIES:
                    raise ServiceUnavailable(
                        f"the upload of {f.rel} to the object store broke off: {exc}",
                        hint="push again",
                    ) from exc
                count(-sent)
                time.sleep(min(0.2 * 2**failures, 5.0))
                continue
            if response.status_code >= 400:
                raise ServiceUnavailable(
                    f"the object store refused the upload of {f.rel}: "
                    f"HTTP {response.status_code} {response.text[:200]}",
                    hint="the pre-signed URL may have expired: push again",
                )
            self._post(f"/api/v1/blobs/{digest}/complete")
            return

    def _put_from(
        self, digest: str, f: SourceFile, offset: int, count: ProgressFn
    ) -> dict[str, Any]:
        def chunks() -> Iterator[bytes]:
            with f.path.open("rb") as stream:
                stream.seek(offset)
                while chunk := stream.read(1 << 20):
                    yield chunk
                    count(len(chunk))

        end = f"{f.size - 1}" if f.size else "*"
        headers = {"Content-Range": f"bytes {offset}-{end}/{f.size}"}
        try:
            response = self._http.put(
                f"/api/v1/blobs/{digest}", content=chunks(), headers=headers, timeout=None
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"the upload of {f.rel} to {self.base_url} broke off: {exc}",
                hint="push again: the upload continues where it stopped",
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return dict(response.json())

    def pull(
        self,
        ref: str,
        dest: Path,
        *,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> PullResult:
        """Write a release's files to ``dest`` (new or empty), verifying every byte; all or nothing."""
        from airlock.core.digest import digest_bytes
        from airlock.core.manifest import Manifest
        from airlock.services.ingest import check_pull_dest
        from airlock.services.registry import PullResult

        release = self.release(ref)
        manifest = Manifest.model_validate(release["manifest"])
        if digest_bytes(manifest.canonical()) != release["digest"]:
            raise IntegrityError(
                f"the manifest of {release['ref']} the server sent does not hash to its digest",
                hint="run `airlock verify` on the server",
            )
        check_pull_dest(dest)
        if on_start is not None:
            on_start(manifest.total_size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.pull-"))
        try:
            for entry in manifest.files:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self._download(entry.digest, entry.size, target, on_bytes)
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return PullResult(manifest.ref, dest, len(manifest.files), manifest.total_size)

    def _download(self, digest: str, size: int, target: Path, on_bytes: ProgressFn | None) -> None:
        """Stream one blob to ``target``, hashing as it comes; resume with Range if it breaks."""
        from airlock.core.digest import short

        h = hashlib.sha256()
        failures = 0
        with target.open("wb") as out:
            while True:
                done = out.tell()
                headers = {"Range": f"bytes={done}-"} if done else {}
                if done and done >= size:
                    break
                try:
                    with self._http.stream(
                        "GET", f"/api/v1/blobs/{digest}", headers=headers, timeout=None
                    ) as response:
                        if response.status_code >= 400:
                            response.read()
                            raise error_from_response(response)
                        for chunk in response.iter_bytes(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                            if on_bytes is not None:
                                on_bytes(len(chunk))
                    break
                except httpx.TransportError as exc:
                    failures += 1
                    if failures > RETRIES:
                        raise ServiceUnavailable(
                            f"the download of blob {short(digest)} broke off: {exc}",
                            hint="pull again",
                        ) from exc
                    time.sleep(min(0.2 * 2**failures, 5.0))
        actual = f"sha256:{h.hexdigest()}"
        if actual != digest:
            raise IntegrityError(
                f"blob {short(digest)} is damaged: its bytes hash to {short(actual)}; "
                f"refusing to materialise {target.name}",
                hint="run `airlock verify` on the server to see which releases use the damaged blob",
            )

    # -- governance -----------------------------------------------------------------------
    def approvals(self, ref: str) -> list[dict[str, Any]]:
        return self._get_all(f"/api/v1/releases/{ref}/approvals")

    def approve(self, ref: str, *, stage: str, comment: str = "") -> dict[str, Any]:
        body = {"stage": stage, "comment": comment}
        return dict(self._post(f"/api/v1/releases/{ref}/approve", body))

    def reject(self, ref: str, *, stage: str, comment: str) -> dict[str, Any]:
        body = {"stage": stage, "comment": comment}
        return dict(self._post(f"/api/v1/releases/{ref}/reject", body))

    def policy(self, name: str, *, version: int | None = None) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/policies/{name}", version=version))

    def set_policy(self, name: str, document: str, *, reason: str = "") -> dict[str, Any]:
        body = {"document": document, "reason": reason}
        return dict(self.request("PUT", f"/api/v1/policies/{name}", json=body).json())

    def policy_history(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every stored policy version (of one model or service), by name then version."""
        return self._get_all("/api/v1/policies", name=name)

    def check(self, ref: str, *, stage: str, policy: str | None = None) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}/check", stage=stage, policy=policy))

    def evaluations(self, ref: str) -> list[dict[str, Any]]:
        return self._get_all(f"/api/v1/releases/{ref}/evaluations")

    def evaluation(self, run_id: int) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/evaluations/{run_id}"))

    def eval_comparison(self, ref: str, *, against: str) -> list[dict[str, Any]]:
        """Per suite: the latest runs of ``against`` and ``ref``, and their latest paired run."""
        return list(self._get(f"/api/v1/releases/{ref}/evaluations/compare", against=against))

    def evaluate(
        self, ref: str, suite: str, *, baseline: str | None = None, confidence: float = 0.95
    ) -> dict[str, Any]:
        """Run a suite (YAML text, or ``quality`` / ``safety``) and store the run."""
        body = {"suite": suite, "baseline": baseline, "confidence": confidence}
        return dict(self._post(f"/api/v1/releases/{ref}/evaluations", body))

    def signatures(self, ref: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}/signatures"))

    def add_signature(self, ref: str, bundle: str) -> dict[str, Any]:
        """Store a bundle signed here (the private key never leaves this machine)."""
        return dict(self._post(f"/api/v1/releases/{ref}/signatures", {"bundle": bundle}))

    def sign(self, ref: str, key: Ed25519PrivateKey) -> dict[str, Any]:
        """Sign a release here with an ed25519 key and store the bundle on the server.

        The manifest is checked against the digest the server names before it is
        signed; the answer says whether the signature counts now (``trusted``).
        """
        from airlock.core.digest import digest_bytes
        from airlock.core.manifest import Manifest
        from airlock.services.signatures import airlock_bundle

        release = self.release(ref)
        manifest = Manifest.model_validate(release["manifest"])
        if digest_bytes(manifest.canonical()) != release["digest"]:
            raise IntegrityError(
                f"the manifest of {release['ref']} the server sent does not hash to its digest",
                hint="run `airlock verify` on the server",
            )
        _, bundle = airlock_bundle(manifest, release["digest"], key)
        return self.add_signature(release["ref"], bundle)

    def keys(self) -> list[dict[str, Any]]:
        return self._get_all("/api/v1/keys")

    def trust_key(self, public_key: str, *, name: str) -> dict[str, Any]:
        """Trust a PEM public key or CA certificate (admin)."""
        return dict(self._post("/api/v1/keys", {"public_key": public_key, "name": name}))

    def revoke_key(self, name: str, *, reason: str = "") -> dict[str, Any]:
        return dict(self._post(f"/api/v1/keys/{name}/revoke", {"reason": reason}))

    # -- tokens ------------------------------------------------------------------------------
    def tokens(
        self, *, include_inactive: bool = False, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Tokens (never secrets): anyone's (or ``user``'s) for an admin, one's own otherwise."""
        return self._get_all("/api/v1/tokens", all=include_inactive, user=user)

    def create_token(
        self, user: str, role: str, *, expires_in: str | None = None, note: str = ""
    ) -> dict[str, Any]:
        body = {"user": user, "role": role, "expires_in": expires_in, "note": note}
        return dict(self._post("/api/v1/tokens", body))

    def revoke_token(self, token_id: str, *, reason: str = "") -> dict[str, Any]:
        return dict(self._post(f"/api/v1/tokens/{token_id}/revoke", {"reason": reason}))

    # -- gateway keys (clients' keys to /v1) -------------------------------------------------
    def gateway_keys(
        self, *, service: str | None = None, include_inactive: bool = False
    ) -> list[dict[str, Any]]:
        return self._get_all("/api/v1/gateway-keys", service=service, all=include_inactive)

    def create_gateway_key(
        self,
        service: str,
        name: str,
        *,
        can_pin: bool = False,
        can_opt_out: bool = False,
        can_feedback: bool = True,
        rpm: int | None = None,
        tpm: int | None = None,
        expires: str | None = None,
        reason: str = "",
    ) -> dict[str, Any]:
        """Create a key for one service; the answer holds its secret, shown this once."""
        body = {
            "service": service,
            "name": name,
            "can_pin": can_pin,
            "can_opt_out": can_opt_out,
            "can_feedback": can_feedback,
            "rpm": rpm,
            "tpm": tpm,
            "expires": expires,
            "reason": reason,
        }
        return dict(self._post("/api/v1/gateway-keys", body))

    def revoke_gateway_key(self, key_id: str, *, reason: str = "") -> dict[str, Any]:
        return dict(self._post(f"/api/v1/gateway-keys/{key_id}/revoke", {"reason": reason}))

    # -- services and telemetry ----------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        return self._get_all("/api/v1/services")

    def create_service(self, name: str, *, stable: str, reason: str = "") -> dict[str, Any]:
        body = {"name": name, "stable": stable, "reason": reason}
        return dict(self._post("/api/v1/services", body))

    def set_opt_out(self, service: str, user: str, *, opted_out: bool = True) -> dict[str, Any]:
        """Keep ``user`` on the stable release of ``service`` (or let them back in)."""
        body = {"user": user, "opted_out": opted_out}
        return dict(self._post(f"/api/v1/services/{service}/opt-outs", body))

    def transcripts(self, service: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/services/{service}/transcripts"))

    def configure_transcripts(
        self, service: str, *, enabled: bool, retention_s: float | None = None, reason: str = ""
    ) -> dict[str, Any]:
        body = {"enabled": enabled, "retention_s": retention_s, "reason": reason}
        path = f"/api/v1/services/{service}/transcripts"
        return dict(self.request("PUT", path, json=_clean(body)).json())

    def purge_transcripts(self, service: str) -> dict[str, Any]:
        return dict(self._post(f"/api/v1/services/{service}/transcripts/purge"))

    def service(self, name: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/services/{name}"))

    def service_quality(self, name: str) -> dict[str, Any]:
        """A service's default quality settings (``quality`` is null when it has none)."""
        return dict(self._get(f"/api/v1/services/{name}/quality"))

    def set_service_quality(
        self, name: str, quality: Mapping[str, Any] | None, *, reason: str = ""
    ) -> dict[str, Any]:
        """Set (or, with None, clear) a service's default quality settings."""
        body = {"quality": None if quality is None else dict(quality), "reason": reason}
        return dict(self.request("PUT", f"/api/v1/services/{name}/quality", json=body).json())

    def plan_history(self, name: str) -> list[dict[str, Any]]:
        return self._get_all(f"/api/v1/services/{name}/plans")

    def telemetry(
        self,
        service: str,
        *,
        since: str | None = None,
        until: str | None = None,
        step: float | None = None,
        release: str | None = None,
    ) -> dict[str, Any]:
        return dict(
            self._get(
                f"/api/v1/services/{service}/telemetry",
                since=since,
                until=until,
                step=step,
                release=release,
            )
        )

    # -- feedback, labels and the judge ----------------------------------------------------------
    def export_feedback(
        self,
        service: str,
        path: Path,
        *,
        since: datetime | None = None,
        release: str | None = None,
        min_score: float | None = None,
        force: bool = False,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> ExportResult:
        """Export a service's transcripts with feedback to ``path`` (JSON Lines), as
        ``airlock feedback export`` does on the server: written and audited there (redacted,
        operators and admins), streamed here into a temporary file beside ``path``, checked
        against the sha256 the audit event recorded, then renamed: whole or not at all."""
        import json

        from airlock.services.feedback_export import (
            ExportFilter,
            ExportResult,
            check_export_target,
            check_min_score,
        )

        check_min_score(min_score)
        path = check_export_target(Path(path), force=force)
        body = {
            "since": since.isoformat() if since is not None else None,
            "release": release,
            "min_score": min_score,
            "path": str(path.resolve()),
        }
        url = f"/api/v1/services/{service}/feedback/export"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        tmp = Path(tmp_name)
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with self._http.stream("POST", url, json=_clean(body), timeout=None) as r:
                        if r.status_code >= 400:
                            r.read()
                            raise error_from_response(r)
                        if on_start is not None:
                            on_start(int(r.headers.get("Content-Length", 0)))
                        for chunk in r.iter_bytes(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                            if on_bytes is not None:
                                on_bytes(len(chunk))
                        head = dict(r.headers)
                except httpx.TransportError as exc:
                    raise ServiceUnavailable(
                        f"the export from {self.base_url} broke off: {exc}",
                        hint="export again; the server recorded the export it made",
                    ) from exc
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != head.get("x-airlock-sha256"):
                raise IntegrityError(
                    f"the export of {service} the server sent does not hash to the sha256 its "
                    "audit event recorded; nothing was written",
                    hint="export again",
                )
            if path.exists() and not force:
                raise Conflict(f"{path} appeared while exporting; nothing was written")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        filt = json.loads(head["x-airlock-filter"])
        return ExportResult(
            path=path,
            service=service,
            count=int(head["x-airlock-count"]),
            sha256=h.hexdigest(),
            filter=ExportFilter(
                since=datetime.fromisoformat(filt["since"]) if filt["since"] else None,
                release=filt["release"],
                min_score=filt["min_score"],
            ),
            exported_at=datetime.fromisoformat(head["x-airlock-exported-at"]),
            event_seq=int(head["x-airlock-event-seq"]),
        )

    def label(self, response_id: str, *, good: bool, reason: str = "") -> dict[str, Any]:
        """A person's verdict on a kept answer (operators, admins); the answer names its service."""
        body = {"response_id": response_id, "good": good, "reason": reason}
        return dict(self._post("/api/v1/transcripts/labels", body))

    def judge_agreement(
        self, service: str, *, judge: str, threshold: float = 0.5
    ) -> dict[str, Any]:
        path = f"/api/v1/services/{service}/judge-agreement"
        return dict(self._get(path, judge=judge, threshold=threshold))

    # -- webhooks ---------------------------------------------------------------------------------
    def webhooks(self, *, include_removed: bool = False) -> list[dict[str, Any]]:
        """Subscriptions: never their secrets, URLs without their path."""
        return self._get_all("/api/v1/webhooks", all=include_removed)

    def add_webhook(
        self, url: str, *, events: str, secret: str | None = None, fmt: str = "json"
    ) -> dict[str, Any]:
        """Subscribe ``url`` (admin); ``secret`` in the answer is the generated one, shown once."""
        body = {"url": url, "events": events, "secret": secret, "format": fmt}
        return dict(self._post("/api/v1/webhooks", body))

    def remove_webhook(self, webhook_id: str, *, reason: str = "") -> dict[str, Any]:
        return dict(self._post(f"/api/v1/webhooks/{webhook_id}/remove", {"reason": reason}))

    def webhook_deliveries(
        self, *, limit: int = 20, webhook_id: str | None = None, attempts: bool = False
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` deliveries (0: every one)."""
        path = "/api/v1/webhooks/deliveries"
        return self._get_first(path, limit, webhook=webhook_id, attempts=attempts)

    def test_webhook(self, webhook_id: str) -> list[dict[str, Any]]:
        """Send a ``webhook.test`` delivery now, from the server; the attempt's result."""
        return list(self._post(f"/api/v1/webhooks/{webhook_id}/test"))

    def deliver_webhooks(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """One delivery pass on the server now (admin): ``queued`` and the ``attempts``."""
        return dict(self._post("/api/v1/webhooks/deliver", {"timeout": timeout}))

    # -- rollouts and drills ------------------------------------------------------------------
    def start_rollout(
        self,
        service: str,
        *,
        candidate: str,
        spec: Mapping[str, Any] | str,
        reason: str = "",
    ) -> dict[str, Any]:
        body = {"candidate": candidate, "spec": spec, "reason": reason}
        return dict(self._post(f"/api/v1/services/{service}/rollouts", body))

    def plan_rollout(
        self,
        service: str,
        *,
        spec: Mapping[str, Any] | str,
        candidate: str | None = None,
        lookback_seconds: float = 3600.0,
        requests_per_second: float | None = None,
        error_rate: float | None = None,
    ) -> dict[str, Any]:
        """What each step of ``spec`` can detect in its bake time (changes nothing)."""
        body = {
            "spec": spec,
            "candidate": candidate,
            "lookback_seconds": lookback_seconds,
            "requests_per_second": requests_per_second,
            "error_rate": error_rate,
        }
        return dict(self._post(f"/api/v1/services/{service}/rollout-plan", body))

    def rollout(self, service: str) -> dict[str, Any]:
        """The service's current (or latest) rollout with its newest verdict."""
        return dict(self._get(f"/api/v1/services/{service}/rollout"))

    def rollouts(self, service: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """Rollouts, newest first: one service's (NotFound if it does not exist), or all."""
        path = f"/api/v1/services/{service}/rollouts" if service else "/api/v1/rollouts"
        return self._get_first(path, limit)

    def rollout_history(self, rollout_id: int) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/rollouts/{rollout_id}"))

    def _control(self, service: str, verb: str, reason: str) -> dict[str, Any]:
        return dict(self._post(f"/api/v1/services/{service}/rollout/{verb}", {"reason": reason}))

    def pause(self, service: str, *, reason: str) -> dict[str, Any]:
        return self._control(service, "pause", reason)

    def resume(self, service: str, *, reason: str) -> dict[str, Any]:
        return self._control(service, "resume", reason)

    def promote(self, service: str, *, reason: str) -> dict[str, Any]:
        return self._control(service, "promote", reason)

    def rollback(self, service: str, *, reason: str) -> dict[str, Any]:
        return self._control(service, "rollback", reason)

    def abort(self, service: str, *, reason: str) -> dict[str, Any]:
        return self._control(service, "abort", reason)

    def drills(self, service: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        return self._get_first("/api/v1/drills", limit, service=service)

    def start_drill(
        self,
        service: str,
        faults: Sequence[str],
        *,
        rps: float = 50.0,
        spec: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a rollback drill in the server (``airlock serve``); it answers at once and
        the drill's rollout and result appear in ``rollout`` and ``drills``."""
        body = {"faults": list(faults), "rps": rps, "spec": dict(spec) if spec else None}
        return dict(self._post(f"/api/v1/services/{service}/drills", body))

    # -- audit ----------------------------------------------------------------------------------
    def events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        return dict(
            self._get(
                "/api/v1/audit/events",
                action=action,
                actor=actor,
                subject=subject,
                since=since,
                after_seq=after_seq,
                limit=limit,
            )
        )

    def verify_audit(self, *, expected_head: str | None = None) -> dict[str, Any]:
        """The server's own verification: a server that rewrote its log could lie here;
        :meth:`audit_chain` gives the events to verify on this machine."""
        return dict(self._get("/api/v1/audit/verify", expected_head=expected_head))

    def audit_head(self) -> dict[str, Any]:
        """The newest event's ``seq`` and ``hash`` as the server stores them."""
        return dict(self._get("/api/v1/audit/head"))

    def audit_chain(self, *, after_seq: int = 0, page: int = 10_000) -> Iterator[dict[str, Any]]:
        """Every stored event after ``after_seq``, ascending, exactly as stored (``details``
        is the text the hash covers): streamed a page at a time, paged by sequence."""
        cursor = after_seq
        while True:
            params = {"after_seq": cursor, "limit": page}
            count = 0
            for event in self._json_lines("/api/v1/audit/chain", params):
                count += 1
                seq = event.get("seq") if isinstance(event, dict) else None
                if not isinstance(seq, int) or seq <= cursor:  # the caller names the fault
                    yield event
                    return
                cursor = seq
                yield event
            if count < page:
                return

    def _json_lines(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Each line of a streamed JSON Lines answer, parsed; a broken stream raises."""
        import json

        try:
            with self._http.stream("GET", path, params=_clean(params), timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                rest = b""
                for chunk in response.iter_bytes(CHUNK):
                    lines = (rest + chunk).split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
                if rest.strip():
                    yield json.loads(rest)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"the download from {self.base_url}{path} broke off: {exc}",
                hint="run the command again",
            ) from exc
        except ValueError as exc:
            raise IntegrityError(
                f"the server sent a line that is not JSON on {path} ({exc})",
                hint="retry; if it persists, the server's API is damaged",
            ) from exc


__all__ = ["Client", "error_from_response"]
