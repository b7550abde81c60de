"""What the commands print and how they exit: stdout for results, stderr for the rest."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

# Exit codes scripts can rely on; 2 is also what Click uses for a malformed command line.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# Results go to stdout (so `--json` and `migrate --sql` can be piped), everything else to
# stderr. rich looks sys.stdout / sys.stderr up on every write, so test runners capture them.
# No markup or emoji codes: printed values (emails, file contents, errors) are data.
_PLAIN: dict[str, Any] = {"highlight": False, "markup": False, "emoji": False}
out = Console(soft_wrap=True, **_PLAIN)
err = Console(stderr=True, soft_wrap=True, **_PLAIN)


def say(label: str, message: str, *, style: str = "bold red") -> None:
    """`label: message` on stderr, the label styled on a terminal, the message verbatim."""
    err.print(Text.assemble((f"{label}:", style), " ", message))


def fail(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit 1."""
    say("error", message)
    raise typer.Exit(EXIT_FAILURE)


def print_table(table: Table) -> None:
    """A table fitted to the terminal; piped, at its natural width so lines can be grepped."""
    if out.is_terminal:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update_width(10_000), table).maximum
    Console(file=sys.stdout, width=natural, color_system=None, **_PLAIN).print(table)


def print_json(value: Any) -> None:
    """Machine-readable output on stdout, one document."""
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
