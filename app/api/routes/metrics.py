"""`GET /metrics`: Prometheus's text format, per worker. Open like /health unless METRICS_TOKEN is
set. Outside the OpenAPI schema: it is Prometheus's format, not this API's JSON (and the request
gate reads a security requirement in the schema as "admin")."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from app.api.auth import bearer_denial
from app.settings import Settings

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else ""
    if token:
        denial = bearer_denial(
            token, request.headers.get("authorization"), name="METRICS_TOKEN", what="metrics token"
        )
        if denial is not None:
            return JSONResponse({"detail": denial.detail}, denial.status_code, denial.headers)
    registry: CollectorRegistry = request.app.state.metrics_registry
    # The format Prometheus asks for (text 0.0.4, or OpenMetrics). On the event loop on purpose:
    # the collector reads the fleet's live state, which only this thread may touch.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), headers={"Content-Type": content_type})
