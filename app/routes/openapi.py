"""The OpenAPI document: the service's real answers, without FastAPI's unused 422.

`python -m app.routes.openapi PATH` writes it to a file (`make docs`: docs/openapi.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.routes.oauth2 import TOKEN_REQUEST_COMPONENTS


def install_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` with a generator that documents 400 instead of 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            contact=app.contact,
            license_info=app.license_info,
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict):
                    operation.get("responses", {}).pop("422", None)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.update(TOKEN_REQUEST_COMPONENTS)
        schema["components"]["schemas"] = dict(sorted(components.items()))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def render_openapi(app: FastAPI) -> str:
    """The document as committed in docs/openapi.json: stable key order, one trailing newline."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def standalone_document() -> str:
    """The document of an app built with fixed settings: what `make docs` commits."""
    from app.config import Settings
    from app.main import create_app

    # Fixed settings: the document must not depend on the environment of whoever runs it.
    settings = Settings(_env_file=None, environment="development", docs_enabled=True)
    return render_openapi(create_app(settings))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m app.routes.openapi PATH", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone_document(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
