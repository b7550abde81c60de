"""Test helpers (fixtures stay in tests/conftest.py): settings, clocks, assertions, accounts,
the app and CLI under test, the databases, log capture and a throw-away PostgreSQL.

The common names are re-exported here: `from tests.support import PASSWORD, build_settings`.
"""

from tests.support.accounts import PASSWORD, RegisteredUser, UserFactory, login, register
from tests.support.apps import CliInvoker, running_app
from tests.support.asserts import TIMESTAMP, assert_error, assert_unavailable
from tests.support.clocks import FakeClock, codec_at, codec_on
from tests.support.databases import BACKENDS, THROTTLE_STORES, prepare_schema, prepared, truncate
from tests.support.logs import LogCapture
from tests.support.settings import (
    FAST_HASHING,
    GENEROUS_CLIENT_LIMITS,
    TEST_SECRET,
    build_settings,
)
from tests.support.throwaway_postgres import ThrowawayPostgres, find_bindir

__all__ = [
    "BACKENDS",
    "FAST_HASHING",
    "GENEROUS_CLIENT_LIMITS",
    "PASSWORD",
    "TEST_SECRET",
    "THROTTLE_STORES",
    "TIMESTAMP",
    "CliInvoker",
    "FakeClock",
    "LogCapture",
    "RegisteredUser",
    "ThrowawayPostgres",
    "UserFactory",
    "assert_error",
    "assert_unavailable",
    "build_settings",
    "codec_at",
    "codec_on",
    "find_bindir",
    "login",
    "prepare_schema",
    "prepared",
    "register",
    "running_app",
    "truncate",
]
