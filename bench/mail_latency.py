"""Time from enqueue to delivery: `POST /auth/password/forgot` until the message is in a
local SMTP server's hands (aiosmtpd), through the real sender of one service instance.

    .venv/bin/python bench/mail_latency.py [--samples 30] [--database-url URL]

The sender is woken by the request's commit, so this is the in-process path; a mail
enqueued by another process waits for this one's poll (MAIL_POLL_INTERVAL_SECONDS) at most.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import _prepare_schema
from tests.mailbox import Mailbox
from tests.support import build_settings, running_app


async def main(samples: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'auth.db'}"
        await _prepare_schema(url)
        box = Mailbox()
        box.start()
        settings = build_settings(
            url,
            Path(tmp),
            mail_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=box.port,
            smtp_tls="none",
            **{"rate_limit_password_reset": "100000/hour"},
            **{"rate_limit_password_reset_ip": "100000/hour"},
            environment="production",
            log_level="WARNING",
        )
        delays = []
        try:
            async with running_app(settings) as (_, client):
                await client.post(
                    "/auth/register",
                    json={"email": "b@example.com", "username": "bench", "password": "a long one!"},
                )
                await box.wait_for()
                for n in range(samples):
                    started = time.monotonic()
                    await client.post("/auth/password/forgot", json={"email": "b@example.com"})
                    arrived = await box.wait_for(count=n + 2)
                    delays.append((arrived[-1].received_at - started) * 1000)
        finally:
            box.stop()
    delays.sort()
    p95 = delays[max(0, int(len(delays) * 0.95) - 1)]
    print(
        f"enqueue -> delivered ({'sqlite' if database_url is None else 'given database'}, "
        f"{samples} samples): median {statistics.median(delays):.1f} ms, p95 {p95:.1f} ms, "
        f"max {delays[-1]:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.database_url))
