"""The owner's side of forwarded requests: one change stream for every id of this process."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from app.bots.fleet.requests import RequestRelay
from app.db import routing as routing_db
from app.db.models import FleetRequest
from tests.bots.fleet.workers import until

Mongo = AsyncMongoClient[dict[str, Any]]


async def test_a_re_registered_worker_takes_requests_on_the_same_stream(
    mongo: Mongo, monkeypatch: Any
) -> None:
    """A re-registration changes the worker id's random suffix only. The stream (parked up to
    STREAM_AWAIT_MS in an idle getMore) matches every id of this process, so a request naming the
    new id is claimed without a new stream; one naming the old id, or another process, is left to
    its receiver (still pending, for its CAS to cancel)."""
    opened: list[str] = []
    watch = AsyncCollection.watch

    async def counted_watch(collection: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
        opened.append(collection.name)
        return await watch(collection, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "watch", counted_watch)
    worker = {"id": "host-a:4242:aaaa0000"}
    delivered: list[FleetRequest] = []
    relay = RequestRelay(me=lambda: worker["id"], can_deliver=lambda bot: True, deliver=delivered.append)
    relay.start()
    try:
        await until(lambda: relay.mode == "change_stream", what="the relay to follow its stream")
        first = await routing_db.submit_request(target_bot=1, target_worker=worker["id"], payload={"n": 1})
        await until(lambda: [r.id for r in delivered] == [first], what="the request for the first id")

        old, worker["id"] = worker["id"], "host-a:4242:bbbb1111"  # reaped, registered again
        stale = await routing_db.submit_request(target_bot=2, target_worker=old, payload={"n": 2})
        foreign = await routing_db.submit_request(target_bot=3, target_worker="host-a:42420:cc", payload={})
        second = await routing_db.submit_request(target_bot=4, target_worker=worker["id"], payload={"n": 4})
        await until(lambda: [r.id for r in delivered] == [first, second], what="the request for the new id")
        assert opened == [FleetRequest.Settings.name], opened  # one stream, never reopened
        for request_id in (stale, foreign):
            assert await routing_db.cancel_request(request_id), "claimed, but it is not this worker's"
    finally:
        await relay.stop(patience=0.0)
