"""The forwarding seam without a gateway: the raw payload is in context while discord.py parses."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.bots.forwarding import Inbound, component_bot, inbound, keep_raw_interactions, run_forwarded


def _client(parse: Any) -> Any:
    state = SimpleNamespace(parsers={"INTERACTION_CREATE": parse}, parse_interaction_create=parse)
    return SimpleNamespace(_connection=state)


def test_the_gateway_parser_sees_the_raw_payload_in_context() -> None:
    seen: list[Inbound | None] = []
    client = _client(lambda data: seen.append(inbound()))
    keep_raw_interactions(client, lambda _client, _data: False)
    payload = {"id": "1", "type": 2, "token": "t"}
    client._connection.parsers["INTERACTION_CREATE"](payload)
    assert seen == [Inbound(payload, forwarded=False)]
    assert inbound() is None  # only while parsing (and in the tasks started from there)


def test_an_intercepted_payload_is_not_parsed_here() -> None:
    seen: list[Any] = []
    client = _client(seen.append)
    keep_raw_interactions(client, lambda _client, data: data["type"] == 3)
    client._connection.parsers["INTERACTION_CREATE"]({"type": 3})
    client._connection.parsers["INTERACTION_CREATE"]({"type": 2})
    assert seen == [{"type": 2}]


def test_a_forwarded_payload_is_marked_so_it_is_never_forwarded_again() -> None:
    seen: list[Inbound | None] = []
    client = _client(lambda data: seen.append(inbound()))
    payload = {"id": "2", "type": 2}
    run_forwarded(client, payload)
    assert seen == [Inbound(payload, forwarded=True)]


def test_components_name_their_bot_in_the_custom_id() -> None:
    def press(custom_id: str, kind: int = 3) -> dict[str, Any]:
        return {"type": kind, "data": {"custom_id": custom_id, "component_type": 2}}

    assert component_bot(press("chorus:skip:123456789012345678:987654321098765432")) == 123456789012345678
    assert component_bot(press("chorus:queue_page:42:7:3")) == 42
    assert component_bot(press("chorus:skip:42:7", kind=5)) is None  # a modal: not a component
    assert component_bot(press("search:pick:1")) is None
    assert component_bot(press("chorus:skip:42")) is None
    assert component_bot({"type": 3}) is None
