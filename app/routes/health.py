"""Health checks for load balancers and orchestrators."""

from __future__ import annotations

import math
import time

from fastapi import APIRouter, Response, status

from app import __version__
from app.core.errors import AppException
from app.dependencies import DatabaseDep, MetricsDep, SettingsDep, ThrottleDep
from app.models.schemas import (
    BreakerCheck,
    DatabaseCheck,
    HealthChecks,
    HealthResponse,
    LiveResponse,
    RedisCheck,
)
from app.openapi import error_responses
from app.utils.circuit_breaker import BreakerState

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Readiness",
    responses={
        **error_responses(),
        503: {
            "model": HealthResponse,
            "description": "Database or Redis failing, or circuit breaker open (the health body)",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            },
            "content": {
                "application/json": {
                    "example": {
                        "status": "unavailable",
                        "version": "1.0.0",
                        "checks": {
                            "database": {
                                "status": "failing",
                                "error": "Service temporarily unavailable",
                            },
                            "circuit_breaker": {"state": "open"},
                        },
                    }
                }
            },
        },
    },
)
async def health(
    database: DatabaseDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
    response: Response,
) -> HealthResponse:
    """Readiness for a load balancer: 200 when the database answers with its migrated
    schema, Redis (with REDIS_URL) answers and the circuit breaker is closed, else 503 with
    the failing check marked. Not logged."""
    started = time.perf_counter()
    try:
        latency = await database.ping()
        db_check = DatabaseCheck(status="ok", latency_ms=round(latency, 2))
    except AppException as error:
        db_check = DatabaseCheck(status="failing", error=error.detail)
    metrics.observe_database_check(time.perf_counter() - started, ok=db_check.status == "ok")
    redis_check = None
    if settings.redis_url:
        # Without its counters every login answers 503 (throttling fails closed).
        try:
            latency = await throttle.ping(settings.db_health_timeout)
            redis_check = RedisCheck(status="ok", latency_ms=round(latency, 2))
        except AppException as error:
            redis_check = RedisCheck(status="failing", error=error.detail)
    breaker_state = database.breaker.state
    healthy = (
        db_check.status == "ok"
        and (redis_check is None or redis_check.status == "ok")
        and breaker_state is not BreakerState.OPEN
    )
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        # Seconds until the breaker admits a trial (rounded up, as on CIRCUIT_BREAKER_OPEN),
        # or a short default when only the database check failed.
        retry_after = math.ceil(database.breaker.retry_after()) or 5
        response.headers["Retry-After"] = str(max(1, retry_after))
    response.headers["Cache-Control"] = "no-store"
    return HealthResponse(
        status="ok" if healthy else "unavailable",
        version=__version__,
        checks=HealthChecks(
            database=db_check,
            circuit_breaker=BreakerCheck(state=breaker_state.value),
            redis=redis_check,
        ),
    )


@router.get(
    "/health/live",
    response_model=LiveResponse,
    summary="Liveness",
    responses=error_responses(),
)
async def live() -> LiveResponse:
    """Answers 200 while the process runs; touches no dependency, so a database outage
    never makes an orchestrator restart a healthy process."""
    return LiveResponse()
