"""Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Header, Response

from app.dependencies import MetricsDep

router = APIRouter()


# Left out of the OpenAPI document on purpose: it is an operator's endpoint scraped by
# Prometheus, not part of the client contract (API.md), and its body is the Prometheus text
# format, which an OpenAPI schema cannot describe. README "Logs and metrics" documents it.
@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep, accept: str | None = Header(default=None)) -> Response:
    """Every metric of this worker process, in the Prometheus (or OpenMetrics) text format."""
    body, media_type = metrics.exposition(accept or "")
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
