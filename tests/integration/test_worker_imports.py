"""A serving worker imports nothing it does not use: resident memory per worker.

Alembic (~11 MB with Mako) is for migrating, segno for drawing an enrolment's QR code,
aiosmtplib for the SMTP backend: a worker that starts on a current schema, with the file
mail backend, and answers a `/health` probe loads none of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import server_env

UNUSED_BY_A_WORKER = ("alembic", "mako", "segno", "aiosmtplib")

# What `authsvc serve` loads (the CLI, then uvicorn's `app.main:app`), then one app's
# lifespan (the start-up schema check) and a readiness probe (`Database.ping`).
WORKER = """
import asyncio, json, sys
import httpx
import app.cli
from app.config import Settings
from app.main import create_app

async def probe():
    application = create_app(Settings(_env_file=None))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            return (await client.get("/health")).status_code

status = asyncio.run(probe())
print(json.dumps({"health": status, "loaded": [m for m in sys.argv[1:] if m in sys.modules]}))
"""


@pytest.mark.process
def test_a_worker_on_a_current_schema_loads_no_migration_qr_or_smtp_library(
    database_url: str, tmp_path: Path
) -> None:
    env = server_env(
        database_url,
        MAIL_BACKEND="file",
        MAIL_FILE_DIR=str(tmp_path / "mail"),
        SECRET_KEY_FILE=str(tmp_path / ".secret_key"),
    )

    result = subprocess.run(
        [sys.executable, "-c", WORKER, *UNUSED_BY_A_WORKER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"health": 200, "loaded": []}
