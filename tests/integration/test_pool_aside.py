"""A request that holds a pooled connection never waits for a second one of the same pool.

The code exchange signs an ID token, and before signing the key ring asks the database
whether its key is still unrevoked (on a worker's first ID token it even opens the ring and
makes the key); the sign-in page asks which application its form leads back to. Both
happen while the request's own transaction holds a connection. From the same pool, a burst
of such requests held every connection while each waited for one more: 503s after the
pool's timeout, and an open circuit breaker. Here the pool has one connection, so any
request that waited for a second one from it would fail.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.database import Database
from app.utils.circuit_breaker import BreakerState
from tests.support import UserFactory
from tests.support.oidc import Flow, code_for, exchange, register_application

pytestmark = pytest.mark.parametrize(
    "settings_overrides",
    [{"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 3.0}],
)


async def test_code_exchanges_and_sign_in_pages_work_with_a_single_pooled_connection(
    client: httpx.AsyncClient, database: Database, user_factory: UserFactory
) -> None:
    await user_factory(username="alice", email="alice@example.com")
    application = await register_application(database)
    flows = [Flow(application) for _ in range(4)]
    # The first sign-in goes through /login with return_to, the others ride its session.
    answers = [await code_for(client, flows[0], "alice")]
    answers += [await code_for(client, flow) for flow in flows[1:]]
    # Exchanged at once: the first opens the ID tokens' key ring, all confirm its key.
    responses = await asyncio.gather(
        *(
            exchange(client, flow, answer["code"])
            for flow, answer in zip(flows, answers, strict=True)
        )
    )
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert all(r.json()["id_token"] for r in responses)
    assert database.breaker.state is BreakerState.CLOSED
