"""`RequestGate`: what is refused before a request reaches a route, and before its body is read.

FastAPI reads and parses a request's body before it runs any dependency, so the admin check in a
dependency alone let anyone without credentials make the process buffer whatever they sent. The
gate is a pure ASGI middleware: it decides from the request line and headers, following the
OpenAPI schema (an operation with a security requirement is an admin operation), so it cannot
drift from the routes.

It also enforces the body limit itself rather than through FastAPI's `max_body_size`: that
limiter sits outside every user middleware and replaces any answer to a request that announces
an oversized body with its own plain-text 413, so neither the admin 401 nor the JSON error shape
the schema declares would survive it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import admin_denial

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE, f"the request body is over the limit of {limit} bytes"
        )


@dataclass(frozen=True, slots=True)
class _PathRule:
    pattern: re.Pattern[str]
    methods: frozenset[str]  # upper case, HEAD included with GET
    admin_methods: frozenset[str]


def _rules(app: FastAPI) -> list[_PathRule]:
    rules: list[_PathRule] = []
    for path, item in app.openapi().get("paths", {}).items():
        operations = {method.upper(): op for method, op in item.items() if method in _METHODS}
        methods = set(operations) | ({"HEAD"} if "GET" in operations else set())
        admin = {method for method, op in operations.items() if op.get("security")}
        pattern, _, _ = compile_path(path)
        rules.append(_PathRule(pattern, frozenset(methods), frozenset(admin)))
    return rules


class RequestGate:
    """Refuses, in this order: an admin request without the right bearer (404/401/403); a body
    over `max_body` bytes (413: at once when announced, else as soon as the stream passes it);
    a method the path does not have (405, with every method of the path in `Allow`, where
    Starlette names only those of the first route it tried)."""

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self._path_rules: list[_PathRule] | None = None  # built from the schema on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(refusal, scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing, which answers it itself
            if started:
                raise
            await _answer(exc, scope, receive, send)

    def _refusal(self, scope: Scope) -> HTTPException | None:
        app: FastAPI = scope["app"]
        if self._path_rules is None:
            self._path_rules = _rules(app)
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        rule = next((r for r in self._path_rules if r.pattern.match(path)), None)
        if rule is not None and method in rule.admin_methods:
            denial = admin_denial(app.state.settings, headers.get("authorization"))
            if denial is not None:
                return denial
        length = headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            return BodyTooLarge(self.max_body)
        if rule is not None and method not in rule.methods:
            allow = ", ".join(sorted(rule.methods))
            return HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, "Method Not Allowed", {"Allow": allow})
        return None


async def _answer(refusal: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": refusal.detail}, refusal.status_code, refusal.headers)
    await response(scope, receive, send)
