from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import ManagerDep
from app.api.schemas import BotPublic, BotsPublic
from app.bots.listing import status_page
from app.bots.status import BotState

router = APIRouter(tags=["bots"])

PAGE_MAX = 1000

_LINK = {
    "description": 'The next page, when a paged request has one: `</bots?...&after=ID>; rel="next"`',
    "schema": {"type": "string"},
}


@router.get(
    "/bots",
    response_model=BotsPublic,
    response_model_by_alias=True,
    response_model_exclude_unset=True,
    responses={
        200: {
            "description": "The bots (one page of them with `limit` or `after`)",
            "headers": {"Link": _LINK},
        }
    },
)
async def list_bots(
    manager: ManagerDep,
    request: Request,
    response: Response,
    status: Annotated[BotState | None, Query(description="Only bots in this state")] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=PAGE_MAX, description=f"Page size (1-{PAGE_MAX}): pages in client-id order"),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{1,20}$",
            description="Cursor: only bots with a higher client id (the previous page's `next`)",
        ),
    ] = None,
) -> BotsPublic:
    """Every bot the manager knows, with its state. Never a token, ciphertext or fingerprint.

    Without `limit` or `after` the whole fleet (running bots, then disabled ones) in one body, as
    always; with either, bots come in client-id order and the body's `next` (and a `Link`
    header) names the cursor of the following page, `null` on the last one.
    """
    if limit is None and after is None:
        statuses = manager.statuses()
        if status is not None:
            statuses = [s for s in statuses if s.state is status]
        return BotsPublic(bots=[BotPublic.from_status(s) for s in statuses])
    page = status_page(manager, state=status, after=int(after) if after is not None else None, limit=limit)
    next_after = str(page.next_after) if page.next_after is not None else None
    if next_after is not None:
        query = {"status": status.value if status is not None else None, "limit": limit, "after": next_after}
        target = urlencode({key: value for key, value in query.items() if value is not None})
        response.headers["Link"] = f'<{request.url.path}?{target}>; rel="next"'
    return BotsPublic(bots=[BotPublic.from_status(s) for s in page.statuses], next=next_after)
