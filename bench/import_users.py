"""Time `authsvc users import` of N hash-only rows into a fresh SQLite database.

    .venv/bin/python bench/import_users.py [--rows 100000] [--format csv|jsonl]

Runs the real command in a subprocess (start-up included) and prints the wall time.
Rows carry bcrypt hashes, as an export from a system being replaced would: nothing is
hashed during the import, so the figure measures reading, checking and writing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt


def write_file(path: Path, rows: int, fmt: str) -> None:
    hashed = bcrypt.hashpw(b"an old password", bcrypt.gensalt(12)).decode()
    with path.open("w", encoding="utf-8") as handle:
        if fmt == "csv":
            handle.write("email,username,password_hash\n")
            for n in range(rows):
                handle.write(f"user{n}@example.com,user{n},{hashed}\n")
        else:
            for n in range(rows):
                record = {"email": f"user{n}@example.com", "username": f"user{n}"}
                handle.write(json.dumps({**record, "password_hash": hashed}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        source = workdir / f"users.{args.format}"
        write_file(source, args.rows, args.format)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'auth.db'}",
            "LOG_LEVEL": "WARNING",
        }
        authsvc = [sys.executable, "-m", "app"]
        subprocess.run([*authsvc, "migrate"], env=env, cwd=workdir, check=True)
        started = time.perf_counter()
        result = subprocess.run(
            [*authsvc, "users", "import", str(source)],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        rate = args.rows / elapsed
        print(f"{args.rows} {args.format} rows: {elapsed:.1f} s wall ({rate:,.0f} rows/s)")
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
