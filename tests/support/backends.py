"""Which database backends a test runs on.

Every test that reaches the database runs on each configured backend (the `database_url`
fixture's parameters), because SQL, locking, races and types differ between them. A test
whose subject cannot differ by backend (request parsing and validation, headers, the
documents and pages served, a browser driving the service) is marked `backend_independent`
and runs on SQLite only (tests/conftest.py): a second run would prove the same thing twice.
"""

from __future__ import annotations

import pytest

# `pytestmark = backend_independent` in a module, or `@backend_independent` on a test.
backend_independent = pytest.mark.backend_independent
