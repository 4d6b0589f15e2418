"""Usage errors that never repeat what was typed: a token pasted in the wrong place stays off the
terminal and out of CI logs."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

from app.logs import redact

__all__ = ("NoEchoCommand",)


class NoEchoCommand(TyperCommand):
    """Click repeats a bad value in its usage errors ("'<value>' is not a valid integer"): a
    token typed into the wrong place must not come back on the terminal, or into a CI log.
    (Typer vendors its own click, so the exception is recognised by its `message`, not its class.)"""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except Exception as exc:
            message = getattr(exc, "message", None)
            if isinstance(message, str):
                exc.message = redact(message)  # type: ignore[attr-defined]  # click's UsageError
            raise
