"""Prometheus metrics of one application instance, in a registry of its own.

A registry per `create_app` (not prometheus-client's global one) keeps several apps in one
process (the tests, an embedding host) from sharing or colliding on series. Values live in
the process: with several uvicorn workers each worker exposes its own counts (see README).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

from app.utils.circuit_breaker import BreakerState, CircuitBreaker

NAMESPACE = "authsvc"
# Request methods outside this set share one label value, so a client inventing methods
# cannot create unbounded series.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests that matched no route share one label value instead of their raw path.
UNMATCHED_ROUTE = "unmatched"
LOGIN_FAILURE_REASONS = ("unknown_user", "wrong_password", "inactive")
_BREAKER_STATE_VALUES = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}


class Metrics:
    """The service's counters, gauges and histograms; `exposition()` renders them."""

    def __init__(self) -> None:
        # `*_created` companions would double the series for little use; the switch is
        # process-wide in prometheus-client, and idempotent.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        ns, reg = NAMESPACE, self.registry
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            namespace=ns,
            registry=reg,
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            namespace=ns,
            registry=reg,
        )
        self.registrations = Counter(
            "registrations", "Accounts created", namespace=ns, registry=reg
        )
        self.login_successes = Counter(
            "login_successes", "Successful logins", namespace=ns, registry=reg
        )
        self.login_failures = Counter(
            "login_failures", "Failed logins by reason", ["reason"], namespace=ns, registry=reg
        )
        self.token_refreshes = Counter(
            "token_refreshes", "Access tokens issued by refresh", namespace=ns, registry=reg
        )
        self.tokens_rejected = Counter(
            "tokens_rejected",
            "Tokens refused, by reason and expected type",
            ["reason", "token_type"],
            namespace=ns,
            registry=reg,
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            ["breaker"],
            namespace=ns,
            registry=reg,
        )
        self.breaker_transitions = Counter(
            "circuit_breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            ["breaker", "state"],
            namespace=ns,
            registry=reg,
        )
        self.database_check_duration = Histogram(
            "database_check_duration_seconds",
            "Latency of the health check's database round trip, by outcome",
            ["outcome"],
            namespace=ns,
            registry=reg,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        # Known label values start at 0, so rates work from the first scrape.
        for reason in LOGIN_FAILURE_REASONS:
            self.login_failures.labels(reason=reason)
        self._breakers: dict[str, CircuitBreaker] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _KNOWN_METHODS else "OTHER"
        self.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.http_request_duration.labels(method=method, route=route).observe(seconds)

    def observe_database_check(self, seconds: float, *, ok: bool) -> None:
        self.database_check_duration.labels(outcome="ok" if ok else "failing").observe(seconds)

    def watch_breaker(self, breaker: CircuitBreaker) -> None:
        """Follow a breaker's state (a listener); a newer breaker of the same name replaces it."""
        self._breakers[breaker.name] = breaker
        breaker.add_listener(self._on_transition)
        self.breaker_state.labels(breaker=breaker.name).set(_BREAKER_STATE_VALUES[breaker.state])

    def _on_transition(self, breaker: CircuitBreaker, _: BreakerState, new: BreakerState) -> None:
        if self._breakers.get(breaker.name) is not breaker:
            return  # a breaker of a previous lifespan
        self.breaker_state.labels(breaker=breaker.name).set(_BREAKER_STATE_VALUES[new])
        self.breaker_transitions.labels(breaker=breaker.name, state=new.value).inc()

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the text format the `Accept` header asks for, and its media type."""
        for breaker in self._breakers.values():
            # An open breaker turns half-open lazily, when its state is read: read it now.
            _ = breaker.state
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
