"""A small Python SDK for the Airlock REST API.

::

    import airlock

    with airlock.Client("http://127.0.0.1:8080", token="alk_...") as api:
        api.approve("chat@1.1.0", stage="production", comment="evals look good")
        rollout = api.start_rollout("chat", candidate="chat@1.1.0", spec={...})
        api.rollback("chat", reason="users complain")

Every method returns the JSON the API answers (dicts and lists; release notes
are text). An error answer is raised as the matching class of Airlock's error
tree — ``NotFound``, ``Forbidden``, ``PolicyViolation`` … — with the server's
message and hint, so ``except airlock.PolicyViolation`` works the same against
the library and against a remote server. A server that cannot be reached raises
``ServiceUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

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

    def _get_all(self, path: str, *, page_size: int = 1000) -> list[Any]:
        """Every item of a paged list: follows ``X-Next-Cursor`` until the last page."""
        items: list[Any] = []
        params: dict[str, Any] = {"limit": page_size}
        while True:
            response = self.request("GET", path, params=params)
            items.extend(response.json())
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor:
                return items
            params = {"limit": page_size, "cursor": cursor}

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

    # -- governance -----------------------------------------------------------------------
    def approvals(self, ref: str) -> list[dict[str, Any]]:
        return list(self._get(f"/api/v1/releases/{ref}/approvals"))

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

    def check(self, ref: str, *, stage: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}/check", stage=stage))

    def evaluations(self, ref: str) -> list[dict[str, Any]]:
        return list(self._get(f"/api/v1/releases/{ref}/evaluations"))

    def evaluation(self, run_id: int) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/evaluations/{run_id}"))

    def evaluate(
        self, ref: str, suite: str, *, baseline: str | None = None, confidence: float = 0.95
    ) -> dict[str, Any]:
        """Run a suite (YAML text, or ``quality`` / ``safety``) and store the run."""
        body = {"suite": suite, "baseline": baseline, "confidence": confidence}
        return dict(self._post(f"/api/v1/releases/{ref}/evaluations", body))

    def signatures(self, ref: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/releases/{ref}/signatures"))

    def keys(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/keys"))

    # -- tokens ------------------------------------------------------------------------------
    def tokens(self, *, include_inactive: bool = False) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/tokens", all=include_inactive))

    def create_token(
        self, user: str, role: str, *, expires_in: str | None = None, note: str = ""
    ) -> dict[str, Any]:
        body = {"user": user, "role": role, "expires_in": expires_in, "note": note}
        return dict(self._post("/api/v1/tokens", body))

    def revoke_token(self, token_id: str, *, reason: str = "") -> dict[str, Any]:
        return dict(self._post(f"/api/v1/tokens/{token_id}/revoke", {"reason": reason}))

    # -- services and telemetry ----------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/services"))

    def service(self, name: str) -> dict[str, Any]:
        return dict(self._get(f"/api/v1/services/{name}"))

    def plan_history(self, name: str) -> list[dict[str, Any]]:
        return list(self._get(f"/api/v1/services/{name}/plans"))

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

    def rollout(self, service: str) -> dict[str, Any]:
        """The service's current (or latest) rollout with its newest verdict."""
        return dict(self._get(f"/api/v1/services/{service}/rollout"))

    def rollouts(self, service: str) -> list[dict[str, Any]]:
        return list(self._get(f"/api/v1/services/{service}/rollouts"))

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

    def drills(self, service: str | None = None) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/drills", service=service))

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
        return dict(self._get("/api/v1/audit/verify", expected_head=expected_head))


__all__ = ["Client", "error_from_response"]
