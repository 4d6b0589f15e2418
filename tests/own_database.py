"""The app's settings on a database of the test's own, for tests that pause or stop it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.db.connection import make_client
from app.db.models import DOCUMENT_MODELS
from app.settings import Settings
from tests.database_process import DatabaseProcess, database_process
from tests.fakes.discord import FakeDiscord


@dataclass
class OwnDatabase:
    process: DatabaseProcess
    settings: Settings  # the app on this database and the fake Discord, no IDENTIFY spacing
    observer: AsyncMongoClient[dict[str, Any]]  # the test's own client, Beanie initialised on it

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.observer[self.settings.mongodb_database]


@contextlib.asynccontextmanager
async def own_database(
    storage: Path, fake_discord: FakeDiscord, make_settings: Callable[..., Settings], **overrides: Any
) -> AsyncIterator[OwnDatabase]:
    """A database process with its data in `storage` (`overrides` go to the settings); resumed
    (if the test paused it), its client closed and the process killed on the way out."""
    with database_process(storage) as database:
        settings = make_settings(
            mongodb_url=database.url,
            discord_api_base=fake_discord.api_base,
            discord_gateway_url=fake_discord.gateway_url,
            identify_interval=0.0,
            **overrides,
        )
        observer = make_client(database.url)
        try:
            await init_beanie(database=observer[settings.mongodb_database], document_models=DOCUMENT_MODELS)
            yield OwnDatabase(database, settings, observer)
        finally:
            database.resume()
            await observer.close()
