"""Dependencies: everything the routes need comes from the lifespan through `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.bots.manager import BotManager
from app.db.connection import DatabaseMonitor
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_manager(request: Request) -> BotManager:
    return request.app.state.manager


def get_database_monitor(request: Request) -> DatabaseMonitor:
    return request.app.state.database_monitor


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[BotManager, Depends(get_manager)]
DatabaseMonitorDep = Annotated[DatabaseMonitor, Depends(get_database_monitor)]
