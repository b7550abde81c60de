"""Which database backends a test runs on.

Every test that reaches the database runs on each configured backend (the `database_url`
fixture's parameters), because SQL, locking, races and types differ between them. A test
whose subject cannot differ by backend (request parsing and validation, headers, the
documents and pages served, a browser driving the service) is marked `backend_independent`
and runs on SQLite only (tests/conftest.py): a second run would prove the same thing twice.
"""

from __future__ import annotations

import pytest

from tests.support.databases import BACKENDS, THROTTLE_STORES

# `pytestmark = backend_independent` in a module, or `@backend_independent` on a test.
backend_independent = pytest.mark.backend_independent

# `pytestmark = stores_paired`: the throttling tests' counters live in the throttle store
# (memory or Redis) and their accounts in the database, and nothing ties the two, so the
# two matrices are paired rather than crossed: each backend and each store runs at least
# once, PostgreSQL with Redis as deployed at scale (tests/conftest.py applies it).
stores_paired = pytest.mark.stores_paired


def store_pairs() -> list[tuple[str, str]]:
    """(database backend, throttle store) pairs covering each of both configured lists."""
    n = max(len(BACKENDS), len(THROTTLE_STORES))
    return [
        (BACKENDS[min(i, len(BACKENDS) - 1)], THROTTLE_STORES[min(i, len(THROTTLE_STORES) - 1)])
        for i in range(n)
    ]
