"""Admin authentication: `Authorization: Bearer <ADMIN_API_TOKEN>`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SettingsDep

_bearer = HTTPBearer(auto_error=False, description="ADMIN_API_TOKEN")


def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """404 when the admin API is disabled (no ADMIN_API_TOKEN), 401 without credentials, 403 when wrong."""
    if settings.admin_api_token is None or not settings.admin_api_token.get_secret_value():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the admin API is disabled: set ADMIN_API_TOKEN")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing credentials: send Authorization: Bearer <ADMIN_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.admin_api_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid admin token")


AdminDep = Depends(require_admin)
