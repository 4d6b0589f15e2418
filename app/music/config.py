"""Parsing LAVALINK_NODES: `name=uri=password` entries separated by commas."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import SecretStr

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class InvalidNodeSpec(ValueError):
    """LAVALINK_NODES cannot be parsed; the message names the entry (never the password)."""


@dataclass(frozen=True, slots=True)
class LavalinkNodeSpec:
    name: str
    uri: str
    password: str = field(repr=False)


def parse_lavalink_nodes(raw: SecretStr | str | None) -> list[LavalinkNodeSpec]:
    """`main=http://lavalink:2333=pass,backup=http://other:2333=pass2` → specs.

    The password is everything after the second `=`, so it may itself contain `=`.
    """
    text = raw.get_secret_value() if isinstance(raw, SecretStr) else (raw or "")
    specs: list[LavalinkNodeSpec] = []
    for index, entry in enumerate(part.strip() for part in text.split(",")):
        if not entry:
            continue
        parts = entry.split("=", 2)
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise InvalidNodeSpec(
                f"LAVALINK_NODES entry #{index + 1} must look like name=http://host:port=password"
            )
        name, uri, password = (p.strip() for p in parts)
        if not _NAME.match(name):
            raise InvalidNodeSpec(
                f"LAVALINK_NODES entry #{index + 1}: name {name!r} must be 1-32 letters/digits/_.-"
            )
        if not uri.startswith(("http://", "https://")):
            raise InvalidNodeSpec(
                f"LAVALINK_NODES entry {name!r}: the URI must start with http:// or https://"
            )
        if any(spec.name == name for spec in specs):
            raise InvalidNodeSpec(f"LAVALINK_NODES: the name {name!r} is used twice")
        specs.append(LavalinkNodeSpec(name=name, uri=uri.rstrip("/"), password=password))
    return specs
