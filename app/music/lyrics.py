"""Lyrics through Lavalink's LavaLyrics plugin.

- `GET /v4/sessions/{sessionId}/players/{guildId}/track/lyrics`: the playing track's lyrics;
- `GET /v4/lyrics?track={encoded}`: any track's.

Both answer 200 with a lyrics object (`sourceName`, `provider`, `text` or timed `lines`), 204
when no source has lyrics for the track, and 404 when Lavalink has no such route (the plugin is
not installed) or, for the player variant, when the player or its track is gone (then the
track variant is asked, which tells the two apart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import wavelink

from app.music.errors import AudioBackendUnavailable, MusicError

_log = logging.getLogger(__name__)


class LyricsUnavailable(MusicError):
    """The audio server has no lyrics plugin."""

    def __init__(self) -> None:
        super().__init__("lyrics.unavailable")


@dataclass(frozen=True, slots=True)
class Lyrics:
    text: str
    source: str
    provider: str | None


def _parse(data: Any) -> Lyrics | None:
    if not isinstance(data, dict):
        return None
    lines = data.get("lines")
    text = data.get("text")
    if isinstance(lines, list) and lines:
        text = "\n".join(str(line.get("line", "")) for line in lines if isinstance(line, dict))
    if not isinstance(text, str) or not text.strip():
        return None
    provider = data.get("provider")
    return Lyrics(
        text=text.strip(),
        source=str(data.get("sourceName") or ""),
        provider=str(provider) if provider else None,
    )


async def _get(node: wavelink.Node, path: str, params: dict[str, Any]) -> tuple[int, Any]:
    """(status, body) of a GET to the node (wavelink's `Node.send`, meant for plugin routes);
    a connection failure is AudioBackendUnavailable."""
    try:
        body = await node.send("GET", path=path, params=params)
    except (wavelink.LavalinkException, wavelink.NodeException) as exc:
        return exc.status or 500, None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        _log.warning("Lyrics request to node %s failed: %s", node.identifier, exc)
        raise AudioBackendUnavailable() from None
    return (204, None) if body is None else (200, body)


async def track_lyrics(node: wavelink.Node, encoded: str) -> Lyrics | None:
    """Lyrics of any track (None: none found). Raises LyricsUnavailable without the plugin."""
    status, body = await _get(node, "v4/lyrics", {"track": encoded, "skipTrackSource": "false"})
    if status == 404:
        raise LyricsUnavailable()
    if status == 204:
        return None
    if status != 200:
        _log.warning("Lyrics on node %s: HTTP %d", node.identifier, status)
        raise MusicError("lyrics.failed")
    return _parse(body)


async def player_lyrics(player: wavelink.Player) -> Lyrics | None:
    """Lyrics of the player's current track, through its own session and node."""
    node = player.node
    track = player.current
    if node.session_id is None or player.guild is None or track is None:
        raise AudioBackendUnavailable()
    path = f"v4/sessions/{node.session_id}/players/{player.guild.id}/track/lyrics"
    status, body = await _get(node, path, {"skipTrackSource": "false"})
    if status == 404:  # no plugin, or Lavalink lost the player: the track variant tells which
        return await track_lyrics(node, track.encoded)
    if status == 204:
        return None
    if status != 200:
        _log.warning("Lyrics on node %s: HTTP %d", node.identifier, status)
        raise MusicError("lyrics.failed")
    return _parse(body)


def pages(text: str, *, size: int = 1800) -> list[str]:
    """Split lyrics into pages of whole lines (a line longer than a page is cut)."""
    result: list[str] = []
    current: list[str] = []
    length = 0
    for line in text.splitlines():
        line = line[:size]
        if current and length + len(line) + 1 > size:
            result.append("\n".join(current))
            current, length = [], 0
        current.append(line)
        length += len(line) + 1
    if current:
        result.append("\n".join(current))
    return result or [""]
