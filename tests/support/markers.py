"""The slow kinds of test, marked by what they start, so `make test-fast` can leave them out.

A fixture that starts a browser or a process says so with `@starts("browser")` (under its
`@pytest.fixture`); every test that uses it, directly or through other fixtures, gets the
marker at collection (tests/conftest.py). A test that starts a process itself carries
`@pytest.mark.process`. Forgetting is not possible: a process started by a test without
either marker fails that test (the audit hook in tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import pytest
from _pytest.nodeid import NodeId

Kind = Literal["process", "browser", "slow"]
F = TypeVar("F", bound=Callable[..., object])

# Markers that allow a test to start a process (a browser is one too).
MAY_START_PROCESSES = frozenset({"process", "browser"})
# Audit events (sys.addaudithook) raised when a process is started.
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn", "os.fork"}
)


def starts(kind: Kind) -> Callable[[F], F]:
    """Mark every test that uses the decorated fixture with `kind`."""

    def mark(fixture: F) -> F:
        fixture.__dict__["starts"] = kind
        return fixture

    return mark


def started_by(fixture: Callable[..., object]) -> Kind | None:
    kind: Kind | None = getattr(fixture, "starts", None)
    return kind


def keep_on_one_worker(item: pytest.Item, group: str) -> None:
    """Send `item` to the pytest-xdist worker that runs the rest of `group`
    (`--dist loadgroup`), so that the group's module-scoped servers start once.

    pytest-xdist learns the group from an `@group` suffix that its worker appends to the
    test's id by setting an attribute that pytest 9.2 no longer reads (the id is now
    structured): the marker alone left every test of a module on whichever worker was
    free, and the module's servers started again for most of them. The same suffix is set
    here on the id pytest reads, once.
    """
    item.add_marker(pytest.mark.xdist_group(group))
    if not getattr(item.config.option, "loadgroup", False):
        return
    if "@" not in item.nodeid.rpartition("]")[2]:
        item._id = NodeId.parse(f"{item.nodeid}@{group}")
