"""Prometheus scrape endpoint, for the operator's scraper only."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from app.core.errors import (
    ForbiddenException,
    InvalidTokenException,
    NotAuthenticatedException,
)
from app.dependencies import MetricsDep, SettingsDep
from app.utils.client_ip import is_loopback

router = APIRouter()


async def require_scraper(
    request: Request,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """With METRICS_TOKEN set, `Authorization: Bearer <it>` (401 otherwise); without it,
    loopback peers only (403 otherwise). The `reason` labels of the login counters tell
    which accounts exist: they are not for the public.

    The peer is the socket's, never a forwarded address: behind a proxy on this host every
    client would otherwise be "loopback". A Unix-socket peer is not loopback for the same
    reason (the proxy in front forwards anybody); such a deployment sets METRICS_TOKEN.
    """
    if settings.metrics_token is None:
        client = request.scope.get("client")
        # Both the socket peer and the resolved client: a local proxy forwarding a public
        # client (TRUSTED_PROXIES) is not a local scraper.
        resolved = request.scope.get("state", {}).get("client_ip")
        if not (is_loopback(client[0] if client else None) and is_loopback(resolved)):
            raise ForbiddenException(
                "Metrics are served to loopback clients only; set METRICS_TOKEN to scrape"
                " from another host"
            )
        return
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise NotAuthenticatedException()
    expected = settings.metrics_token.get_secret_value().encode()
    # Constant time: the comparison must not tell how many leading characters were right.
    if not hmac.compare_digest(presented.strip().encode(), expected):
        raise InvalidTokenException()


# Left out of the OpenAPI document on purpose: it is an operator's endpoint scraped by
# Prometheus, not part of the client contract, and its body is the Prometheus text
# format, which an OpenAPI schema cannot describe. docs/security.md "Metrics access".
@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_scraper)])
async def metrics(metrics: MetricsDep, accept: str | None = Header(default=None)) -> Response:
    """Every metric of this worker process, in the Prometheus (or OpenMetrics) text format."""
    body, media_type = metrics.exposition(accept or "")
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
