"""`/dashboard`: the page, its sign-in and sign-out, its JSON state and its two static files.

Off (404, every route) while ADMIN_API_TOKEN is unset, like the admin API. Outside the OpenAPI
schema: HTML, a form and a cookie, not the JSON API (schemathesis fuzzes that one). The request
gate still applies (the 64 KiB body limit). Every answer says `no-store` (the page names guilds
and tracks) and carries a Content-Security-Policy that allows only this origin's own script and
style: no inline code, no CDN.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.api.dashboard.session import COOKIE, COOKIE_PATH, LIFETIME, DashboardSessions, Session, admin_token
from app.api.dashboard.view import FleetView, fleet_view
from app.bots.manager import BotManager
from app.db.connection import DatabaseMonitor
from app.settings import Settings

_log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
POLL_SECONDS = 2
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


def clock(ms: int) -> str:
    """3:05, or 1:02:03 past an hour (the JS formats the same way)."""
    seconds = max(0, int(ms) // 1000)
    hours, minutes = seconds // 3600, seconds // 60 % 60
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


_templates.filters["clock"] = clock
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _enabled(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if admin_token(settings) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    return settings


SettingsOn = Annotated[Settings, Depends(_enabled)]
router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _sessions(request: Request) -> DashboardSessions:
    return request.app.state.dashboard_sessions


def _session(request: Request, settings: Settings) -> Session | None:
    return _sessions(request).verify(settings, request.cookies.get(COOKIE))


def _secured(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response


def _page(name: str, status_code: int = 200, **context: Any) -> Response:
    html = _templates.get_template(name).render(poll_seconds=POLL_SECONDS, **context)
    return _secured(HTMLResponse(html, status_code))


def _cross_site(request: Request) -> bool:
    """A form posted by another site (CSRF): browsers say where a request comes from."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser's cross-site form (they send Origin on POST)
    return urlsplit(origin).netloc.lower() != (request.headers.get("host") or "").lower()


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the form")
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items() if values}


def _view(request: Request) -> FleetView:
    manager: BotManager = request.app.state.manager
    monitor: DatabaseMonitor = request.app.state.database_monitor
    settings: Settings = request.app.state.settings
    return fleet_view(
        manager,
        database_up=monitor.reachable,
        address=f"http://{settings.http_host}:{settings.http_port}",
        events=manager.events,
    )


@router.get("")
async def dashboard(request: Request, settings: SettingsOn) -> Response:
    session = _session(request, settings)
    if session is None:
        return _page("sign_in.html", error=None)
    return _page(
        "dashboard.html",
        view=_view(request),
        form_token=_sessions(request).form_token(settings, session),
    )


@router.post("/sign-in")
async def sign_in(request: Request, settings: SettingsOn) -> Response:
    if _cross_site(request):
        return _page("sign_in.html", status.HTTP_403_FORBIDDEN, error="Sign in from this page.")
    typed = (await _form(request)).get("token", "")
    sessions = _sessions(request)
    if not sessions.token_matches(settings, typed):
        _log.warning("Dashboard sign-in refused (wrong admin token) from %s",
                     request.client.host if request.client else "unknown")  # fmt: skip
        return _page("sign_in.html", status.HTTP_401_UNAUTHORIZED, error="That is not the admin token.")
    response = RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        sessions.issue(settings),
        max_age=LIFETIME,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    _log.info("Dashboard signed in from %s", request.client.host if request.client else "unknown")
    return _secured(response)


@router.post("/sign-out")
async def sign_out(request: Request, settings: SettingsOn) -> Response:
    session = _session(request, settings)
    form = await _form(request)
    if session is None or _cross_site(request):
        return _secured(JSONResponse({"detail": "not signed in from this page"}, status.HTTP_403_FORBIDDEN))
    if not _sessions(request).form_token_matches(settings, session, form.get("form_token", "")):
        return _secured(JSONResponse({"detail": "not signed in from this page"}, status.HTTP_403_FORBIDDEN))
    _sessions(request).revoke(session)
    response = RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")
    return _secured(response)


@router.get("/state")
async def state(request: Request, settings: SettingsOn) -> Response:
    """The page's data source (see `fleet_view`), polled by its script."""
    if _session(request, settings) is None:
        return _secured(JSONResponse({"detail": "sign in at /dashboard"}, status.HTTP_401_UNAUTHORIZED))
    return _secured(Response(_view(request).model_dump_json(by_alias=True), media_type="application/json"))


@router.get("/static/{name}")
async def static(name: str, settings: SettingsOn) -> Response:
    content_type = STATIC.get(name)
    if content_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    response = Response((HERE / "static" / name).read_bytes(), headers={"Content-Type": content_type})
    _secured(response)
    response.headers["Cache-Control"] = "no-cache"  # revalidated, so an upgrade is seen at once
    return response
