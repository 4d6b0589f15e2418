"""Dashboard sign-in: the admin token typed once into a form, then a session cookie.

The token never travels in a URL (a POST body) and is never stored in the browser: the cookie
holds a random session id and its expiry, signed with a key derived from ADMIN_API_TOKEN
(HMAC-SHA256), so any worker of the fleet accepts it and changing the token signs everyone out.
The cookie is HttpOnly (no script reads it), Secure (browsers send it over HTTPS only, and over
http://localhost for development), SameSite=Strict (no other site can make a browser send it)
and scoped to /dashboard. Signing out revokes the session on this worker and clears the cookie;
a form posted from another origin is refused, and sign-out also needs a token only our page
has (derived from the session).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from app.settings import Settings

COOKIE = "chorus_dashboard"
COOKIE_PATH = "/dashboard"
LIFETIME = 12 * 3600  # seconds


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires: int  # unix time


def admin_token(settings: Settings) -> str | None:
    token = settings.admin_api_token
    return token.get_secret_value() if token is not None and token.get_secret_value() else None


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), b"chorus dashboard session v1", hashlib.sha256).digest()


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


class DashboardSessions:
    """Issues and checks session cookies; remembers revoked ones until they expire."""

    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}

    def token_matches(self, settings: Settings, typed: str) -> bool:
        token = admin_token(settings)
        return token is not None and hmac.compare_digest(typed.strip().encode(), token.encode())

    def issue(self, settings: Settings) -> str:
        token = admin_token(settings)
        assert token is not None, "the dashboard is off without ADMIN_API_TOKEN"
        payload = f"{secrets.token_urlsafe(18)}.{int(time.time()) + LIFETIME}"
        return f"{payload}.{_sign(_key(token), payload)}"

    def verify(self, settings: Settings, cookie: str | None) -> Session | None:
        token = admin_token(settings)
        if token is None or not cookie or cookie.count(".") != 2:
            return None
        session_id, expires, signature = cookie.split(".")
        if not hmac.compare_digest(signature, _sign(_key(token), f"{session_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) <= time.time() or session_id in self._revoked:
            return None
        return Session(id=session_id, expires=int(expires))

    def revoke(self, session: Session) -> None:
        now = time.time()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.id] = session.expires

    def form_token(self, settings: Settings, session: Session) -> str:
        """The anti-forgery value of the page's own forms (sign-out)."""
        token = admin_token(settings)
        assert token is not None
        return _sign(_key(token), f"form:{session.id}")

    def form_token_matches(self, settings: Settings, session: Session, value: str) -> bool:
        return hmac.compare_digest(value, self.form_token(settings, session))
