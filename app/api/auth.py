"""Admin authentication: `Authorization: Bearer <ADMIN_API_TOKEN>`, compared in constant time.

Checked twice on purpose: `RequestGate`, a pure ASGI middleware, refuses an admin request before a
byte of its body is read (FastAPI reads and parses the body before it runs any dependency, so a
dependency alone lets anyone make the process buffer large bodies); `require_admin`, the route
dependency, declares the bearer scheme in the OpenAPI schema and guards the route itself.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SettingsDep
from app.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="ADMIN_API_TOKEN")


def admin_denial(settings: Settings, authorization: str | None) -> HTTPException | None:
    """Why an `Authorization` header value does not open the admin API, or None when it does.

    404 when the admin API is disabled (no ADMIN_API_TOKEN), 401 without bearer credentials,
    403 when they are wrong.
    """
    if settings.admin_api_token is None or not settings.admin_api_token.get_secret_value():
        return HTTPException(status.HTTP_404_NOT_FOUND, "the admin API is disabled: set ADMIN_API_TOKEN")
    token = settings.admin_api_token.get_secret_value()
    return bearer_denial(token, authorization, name="ADMIN_API_TOKEN", what="admin token")


def bearer_denial(expected: str, authorization: str | None, *, name: str, what: str) -> HTTPException | None:
    """401 without bearer credentials, 403 when they are not `expected` (constant time), else None."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing credentials: send Authorization: Bearer <{name}>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.strip().encode(), expected.encode()):
        return HTTPException(status.HTTP_403_FORBIDDEN, f"invalid {what}")
    return None


def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials is not None else None
    denial = admin_denial(settings, header)
    if denial is not None:
        raise denial


AdminDep = Depends(require_admin)
