"""Schemathesis against the app's own OpenAPI document, over HTTP to a live server.

Bounded and deterministic (derandomized Hypothesis, no example database): every run sends
the same cases, valid and invalid ones. Checks: no 5xx, every status documented for its
operation, every body valid against the documented schema, the documented content type.
It found the NUL-in-username 500 on PostgreSQL (see test_user_service.py).

The contract does not differ by backend, so the fuzzing runs once, on PostgreSQL when the
run has one (the stricter of the two: it refuses what SQLite stores), else on SQLite. One
server serves the module; each operation starts with fresh throttling counters and an
account of its own, as it did with a server of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.cli.openapi import standalone_document
from app.main import create_app
from app.wiring import build_throttle
from tests.support import PASSWORD, build_settings, prepare_schema
from tests.support.databases import worker_database_url
from tests.support.servers import ThreadedServer, serve_in_thread

if TYPE_CHECKING:  # the alias exists for type checkers only
    from schemathesis.specs.openapi.schemas import OpenApiCase

DOCUMENT: dict[str, Any] = json.loads(standalone_document())
SECURED_PATHS = [
    path
    for path, item in DOCUMENT["paths"].items()
    if any("security" in operation for operation in item.values())
]

schema = schemathesis.openapi.from_dict(DOCUMENT)
secured = schema.include(path=SECURED_PATHS)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
BOUNDED = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    # The server is shared by design; Hypothesis need not warn about fixtures.
    suppress_health_check=list(HealthCheck),
)


pytestmark = pytest.mark.slow
accounts = itertools.count(1)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    postgres = os.environ.get("TEST_DATABASE_URL")
    url = (
        worker_database_url(postgres, "schemathesis")
        if postgres
        else f"sqlite+aiosqlite:///{workdir / 'auth.db'}"
    )
    asyncio.run(prepare_schema(url))
    settings = build_settings(url, workdir, redis_key_prefix="authsvc-test-schemathesis")
    with serve_in_thread(create_app(settings), access_log=False) as server:
        yield server


@pytest.fixture
def live_server(fuzz_server: ThreadedServer) -> str:
    """The module's server, its throttling counters new: a 429 earned by one operation's
    cases never answers another's."""
    app = fuzz_server.app

    async def fresh_counters() -> None:
        await app.state.throttle.close()
        app.state.throttle = build_throttle(app.state.settings)

    fuzz_server.call(fresh_counters())
    return fuzz_server.url


@pytest.fixture
def access_token(live_server: str) -> str:
    """An account of this operation's own: another operation's cases may have deleted or
    signed out the previous one."""
    n = next(accounts)
    response = httpx.post(
        f"{live_server}/auth/register",
        json={"email": f"fuzz{n}@example.com", "username": f"fuzz{n}", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


@schema.parametrize()
@BOUNDED
def test_api_answers_as_documented(case: OpenApiCase, live_server: str) -> None:
    case.call_and_validate(base_url=live_server, checks=CHECKS, timeout=30)


@secured.parametrize()
@BOUNDED
def test_signed_in_calls_answer_as_documented(
    case: OpenApiCase, live_server: str, access_token: str
) -> None:
    case.call_and_validate(
        base_url=live_server,
        checks=CHECKS,
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=30,
    )
