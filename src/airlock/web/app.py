"""The dashboard: server-rendered pages (Jinja2) with a little JavaScript for live charts.

=================================  ===============================================
``GET  /``                          services (stable release, traffic split, rollout
                                    in flight, health over the last 5 minutes per
                                    release: requests/s, error %, p95), models,
                                    recent rollouts
``GET  /services/{name}``           one service: split, step, live charts, verdict
                                    with confidence intervals, quality (defaults,
                                    charts per scorer), controls, history
``GET  /services/{name}/live.json`` what that page polls every two seconds
                                    (``?range=15m|1h|24h`` for a longer chart)
``GET  /rollouts``                  every rollout, newest first, a page at a time
                                    (``?before=ID``: keyset; ``?service=NAME``)
``GET  /rollouts/{id}``             one rollout, in flight or past: steps with bake
                                    progress, decisions, verdict in words, charts
                                    (``?range=15m|1h|24h``; default: its own span;
                                    ``?holds=all``: every 30-second hold too)
``GET  /services/{name}/pairs``     shadow comparisons: the pairs a pairwise judge
                                    compared (prompt, both answers, win/tie/loss,
                                    judge), newest first, a page at a time
                                    (``?cursor=``; ``?rollout=ID``: one rollout's)
``POST /services/{name}/rollout/{verb}``  pause, resume, promote, rollback, abort
``GET  /models/{name}``             a model's releases and alias moves
``GET  /releases/{ref}``            manifest, lineage graph, evaluations, approvals,
                                    policy checks, notes, integrity
``GET  /audit``                     the audit log and its verification
``GET|POST /login``, ``POST /logout``
=================================  ===============================================

Signing in: the login form takes an API token (the same tokens as the REST API
and the CLI), checks it, and keeps it in an ``HttpOnly``, ``SameSite=Strict``
cookie. A cookie rather than ``sessionStorage`` because the pages are rendered
on the server, which needs the caller's identity on the very first request;
``HttpOnly`` keeps the token out of reach of any script on the page, and
``SameSite=Strict`` plus a per-session CSRF token in every form (an HMAC of the
token id under a key that lives only in this process) keeps other sites from
making a signed-in browser act. The token is re-checked on every request, so a
revoked token signs the browser out at once. Every action still goes through
the services layer, which checks the role and writes the audit event; the pages
only hide buttons the role could not use anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from airlock import __version__
from airlock.api.deps import Authenticator
from airlock.api.errors import error_json
from airlock.body_limit import BodyLimit, json_render
from airlock.core.digest import short
from airlock.core.roles import Action
from airlock.errors import AirlockError, Forbidden, InvalidInput
from airlock.services.audit_views import ChainMonitor
from airlock.services.identity import Actor
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from airlock.web import markdown, quality_views, views
from airlock.web.charts import parse_range

COOKIE = "airlock_token"
MAX_FORM_BYTES = 64 * 1024  # the dashboard's only bodies are small forms
VERBS = ("pause", "resume", "promote", "rollback", "abort")
_HERE = Path(str(resources.files("airlock") / "web"))

Page = Callable[[Request, Actor], Awaitable[Response]]


def _ago(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - when).total_seconds()
    if seconds < 60:
        return f"{max(seconds, 0):.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h ago"
    return when.strftime("%Y-%m-%d")


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _bytes(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f} %"


def _rate_pct(x: float | None) -> str:
    """A rate (0..1) in %, with the decimals a small rate needs: ``0.20 %``, ``0.004 %``."""
    if x is None:
        return "—"
    if x == 0:
        return "0 %"
    digits = 2 if x >= 0.0001 else 4
    return f"{x * 100:.{digits}f} %"


def _per_s(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _rollout_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"{text!r} is not a rollout id", hint="rollout ids are whole numbers")
    return int(text)


def create_dashboard(
    workspace: Workspace,
    *,
    serving: Serving | None = None,
    authenticate: Authenticator,
    secure_cookies: bool = False,
) -> Starlette:
    """The dashboard as an ASGI app (``airlock serve`` routes every non-API path here)."""
    serving = serving or Serving(workspace)
    chain = ChainMonitor(workspace)  # the audit page's verification, kept between views
    csrf_key = secrets.token_bytes(32)
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    env = templates.env
    env.filters.update(
        ago=_ago,
        when=_when,
        bytes=_bytes,
        pct=_pct,
        short=short,
        rate_pct=_rate_pct,
        per_s=_per_s,
        duration=_duration,
    )
    env.globals.update(version=__version__, markdown=markdown.render, quote=quote)

    def csrf_for(who: Actor) -> str:
        key = (who.token_id or who.name).encode()
        return hmac.new(csrf_key, key, hashlib.sha256).hexdigest()[:32]

    def current(request: Request) -> Actor | None:
        secret = request.cookies.get(COOKIE)
        if not secret:
            return None
        try:
            return authenticate(secret)
        except Forbidden:
            return None

    def render(
        request: Request, who: Actor, template: str, status: int = 200, **context: Any
    ) -> Response:
        context |= {
            "who": who,
            "csrf": csrf_for(who),
            "can_control": who.can(Action.ROLLOUT_CONTROL),
            "can_rollback": who.can(Action.ROLLOUT_ROLLBACK),
            "flash_ok": request.query_params.get("ok"),
            "flash_error": request.query_params.get("error"),
            "path": request.url.path,
        }
        return templates.TemplateResponse(request, template, context, status_code=status)

    def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = current(request)
            if who is None:
                if request.url.path.endswith(".json"):
                    return JSONResponse({"error": "sign in again"}, status_code=401)
                target = quote(request.url.path, safe="/@:")
                return RedirectResponse(f"/login?next={target}", status_code=303)
            try:
                return await handler(request, who)
            except AirlockError as exc:
                if request.url.path.endswith(".json"):
                    return JSONResponse(exc.to_dict(), status_code=exc.status)
                return render(request, who, "error.html", exc.status, error=exc)

        return endpoint

    # -- sign in and out ---------------------------------------------------------------
    async def login_form(request: Request) -> Response:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": _safe_next(request.query_params.get("next")), "error": None, "who": None},
        )

    async def login(request: Request) -> Response:
        form = await _form(request)
        secret = str(form.get("token", "")).strip()
        target = _safe_next(str(form.get("next", "/")))
        try:
            who = authenticate(secret or None)
        except AirlockError as exc:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": target, "error": exc.message, "who": None},
                status_code=403,
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            secret,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            path="/",
            max_age=12 * 3600,
        )
        del who
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- pages ---------------------------------------------------------------------------
    async def home(request: Request, who: Actor) -> Response:
        data = await _thread(views.overview, workspace, serving)
        return render(request, who, "overview.html", **data)

    async def service(request: Request, who: Actor) -> Response:
        name = request.path_params["name"]
        span = parse_range(request.query_params.get("range"))
        data = await _thread(lambda: views.service_page(workspace, serving, name, span=span))
        return render(request, who, "service.html", **data)

    async def pairs(request: Request, who: Actor) -> Response:
        name, q = request.path_params["name"], request.query_params
        chosen = q.get("rollout")
        data = await _thread(
            lambda: quality_views.pairs_page(
                workspace,
                serving,
                name,
                rollout_id=_rollout_id(chosen) if chosen else None,
                cursor=q.get("cursor") or None,
            )
        )
        return render(request, who, "pairs.html", **data)

    async def service_live(request: Request, who: Actor) -> Response:
        name = request.path_params["name"]
        span = parse_range(request.query_params.get("range"))
        return JSONResponse(await _thread(lambda: views.live(workspace, serving, name, span=span)))

    async def rollout_list(request: Request, who: Actor) -> Response:
        q = request.query_params
        before = q.get("before")
        data = await _thread(
            lambda: views.rollouts_page(
                workspace,
                service=q.get("service") or None,
                before=_rollout_id(before) if before else None,
            )
        )
        return render(request, who, "rollouts.html", **data)

    async def rollout(request: Request, who: Actor) -> Response:
        rollout_id = _rollout_id(request.path_params["id"])
        chosen = request.query_params.get("range") or ""
        span = parse_range(chosen)
        every_hold = request.query_params.get("holds") == "all"
        data = await _thread(
            lambda: views.rollout_page(
                workspace, serving, rollout_id, span=span, every_hold=every_hold
            )
        )
        return render(request, who, "rollout.html", chosen_range=chosen, **data)

    async def control(request: Request, who: Actor) -> Response:
        name, verb = request.path_params["name"], request.path_params["verb"]
        back = f"/services/{quote(name)}"
        form = await _form(request)
        if not hmac.compare_digest(str(form.get("csrf", "")), csrf_for(who)):
            raise Forbidden("the form is stale or was sent from another site; reload the page")
        if verb not in VERBS:
            raise InvalidInput(f"unknown action {verb!r}", hint=f"one of: {', '.join(VERBS)}")
        reason = str(form.get("reason", "")).strip()
        rollouts = Rollouts(workspace, serving=serving)
        fn = getattr(rollouts, verb)
        try:
            done = await _thread(lambda: fn(name, actor=who, reason=reason))
        except AirlockError as exc:
            query = urlencode({"error": f"{exc.message}" + (f" — {exc.hint}" if exc.hint else "")})
            return RedirectResponse(f"{back}?{query}", status_code=303)
        message = f"rollout #{done.rollout.id}: {done.action} — now {done.rollout.phase}"
        return RedirectResponse(f"{back}?{urlencode({'ok': message})}", status_code=303)

    async def model(request: Request, who: Actor) -> Response:
        name, cursor = request.path_params["name"], request.query_params.get("cursor")
        data = await _thread(views.model_page, workspace, name, cursor)
        return render(request, who, "model.html", **data)

    async def release(request: Request, who: Actor) -> Response:
        ref = request.path_params["ref"]
        verify = request.query_params.get("verify") == "1"
        data = await _thread(lambda: views.release_page(workspace, ref, verify=verify))
        return render(request, who, "release.html", **data)

    async def audit_log(request: Request, who: Actor) -> Response:
        q = request.query_params
        before = q.get("before")
        data = await _thread(
            lambda: views.audit_page(
                workspace,
                action=q.get("action"),
                actor=q.get("actor"),
                subject=q.get("subject"),
                before_seq=int(before)
                if before and before.isdigit() and len(before) < 19
                else None,
                chain=chain,
                walk=q.get("verify") == "all",
            )
        )
        return render(request, who, "audit.html", **data)

    routes = [
        Route("/", page(home)),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/services/{name}", page(service)),
        Route("/services/{name}/live.json", page(service_live)),
        Route("/services/{name}/pairs", page(pairs)),
        Route("/services/{name}/rollout/{verb}", page(control), methods=["POST"]),
        Route("/rollouts", page(rollout_list)),
        Route("/rollouts/{id}", page(rollout)),
        Route("/models/{name}", page(model)),
        Route("/releases/{ref}", page(release)),
        Route("/audit", page(audit_log)),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse(
            "<!doctype html><title>Not found</title><p>Nothing here. "
            '<a href="/">Back to the dashboard</a></p>',
            status_code=404,
        )

    limit = Middleware(BodyLimit, render=json_render(error_json), limit=MAX_FORM_BYTES)
    return Starlette(routes=routes, exception_handlers={404: not_found}, middleware=[limit])


async def _thread(fn: Callable[..., Any], *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(lambda: fn(*args))


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind these forms send)."""
    if len(body := await request.body()) > MAX_FORM_BYTES:  # (BodyLimit refuses it first)
        raise InvalidInput("the form is too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``/x`` yes, ``//evil.example`` or ``https://...`` no."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


__all__ = ["COOKIE", "create_dashboard"]
