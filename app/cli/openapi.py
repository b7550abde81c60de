"""`openapi PATH`: write the service's OpenAPI document (`make docs`: docs/openapi.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.output import out
from app.config import Settings
from app.openapi import render_openapi


def standalone_document() -> str:
    """The document of an app built with fixed settings: what `make docs` commits."""
    # Imported here: app.main builds its module-level app at import, which only this
    # command (the one that documents the whole app) needs.
    from app.main import create_app

    # Fixed settings: the document must not depend on the environment of whoever runs it.
    settings = Settings(_env_file=None, environment="development", docs_enabled=True)
    return render_openapi(create_app(settings))


def openapi(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the JSON document.")],
) -> None:
    """Write the OpenAPI document, as the service serves it at /openapi.json, to PATH."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone_document(), encoding="utf-8")
    out.print(f"wrote {path}")
