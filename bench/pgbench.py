"""The database ceiling: pgbench running the worker's own per-message transactions.

``inbound``: the transaction of conversation/turn.py for one message (dedupe insert,
contact lock, locked read, state update, outbox inserts), as the issue asks. ``full``: that
plus every transaction the sender commits for the message's two outbox rows, i.e. all the
database work one message costs; no HTTP. Both run with as many clients as the stack has
worker processes, prepared statements (psycopg prepares repeated statements too), against
the benchmark's own database, so table sizes match the end-to-end runs beside them.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, libpq_url

SCRIPTS = BENCH_DIR / "pgbench"


def script(kind: str) -> str:
    inbound = (SCRIPTS / "inbound_message.sql").read_text()
    if kind == "inbound":
        return inbound
    if kind == "full":
        return inbound + "\n" + (SCRIPTS / "sender_transactions.sql").read_text()
    raise ValueError(f"unknown pgbench script {kind!r}")


def run(database_url: str, kind: str, seconds: float, clients: int = 4, threads: int = 2) -> dict[str, Any]:
    """One pgbench run; ``tps`` is messages per second the database alone sustains."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script(kind))
        path = Path(f.name)
    try:
        done = subprocess.run(
            [
                "pgbench",
                "--no-vacuum",
                "--protocol",
                "prepared",
                "--client",
                str(clients),
                "--jobs",
                str(threads),
                "--time",
                str(max(1, round(seconds))),
                "--file",
                str(path),
                libpq_url(database_url),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        path.unlink(missing_ok=True)
    out: dict[str, Any] = {"script": kind, "clients": clients, "seconds": seconds}
    if m := re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout):
        out["tps"] = round(float(m.group(1)), 1)
    if m := re.search(r"latency average = ([\d.]+) ms", done.stdout):
        out["latency_avg_ms"] = float(m.group(1))
    if m := re.search(r"number of failed transactions: (\d+)", done.stdout):
        out["failed"] = int(m.group(1))
    if done.returncode != 0 or "tps" not in out:
        out["error"] = (done.stderr or done.stdout)[-800:]
    return out
