"""Load generators: wrk for closed-loop saturation, an asyncio client for open-loop fixed rates.

wrk (C, Debian package) measures the most a server can do without the client being the
bottleneck. A fixed offered rate needs an open-loop client (wrk2 is not packaged): requests
leave on a schedule whatever the server does, and latency is counted from the scheduled
time, so a stalled server cannot hide its queueing (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import latency_summary


async def http_post(port: int, path: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0) -> int:
    """One POST on a fresh connection (gunicorn's sync workers close after each answer)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}", "Connection: close"]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)
        parts = status_line.split()
        return int(parts[1]) if len(parts) > 1 else 0
    finally:
        writer.close()


@dataclass
class OpenLoopResult:
    offered_rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled send time

    def summary(self) -> dict[str, Any]:
        return {
            "offered_rate": self.offered_rate,
            "achieved_rate": round(self.ok / self.seconds, 1) if self.seconds else 0.0,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            **latency_summary(self.latencies),
        }


async def open_loop(
    rate: float,
    seconds: float,
    request: Callable[[int], Awaitable[int]],
    max_in_flight: int = 2000,
    grace: float = 10.0,
) -> OpenLoopResult:
    """Call ``request(i)`` at ``rate`` per second for ``seconds``; each returns an HTTP status."""
    result = OpenLoopResult(rate, seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, scheduled: float) -> None:
        try:
            status = await request(i)
        except (OSError, TimeoutError):
            status = 0
        if 200 <= status < 300:
            result.ok += 1
            result.latencies.append(loop.time() - scheduled)
        else:
            result.errors += 1

    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(pending) >= max_in_flight:
            result.errors += 1  # the server is so far behind that the client gives up on this one
            continue
        task = asyncio.create_task(one(i, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
        result.sent += 1
    if pending:
        await asyncio.wait(pending, timeout=grace)
    return result


# --- wrk --------------------------------------------------------------------------------


def _lua_string(value: str) -> str:
    level = "=" * 4
    while f"]{level}]" in value:
        level += "="
    return f"[{level}[{value}]{level}]"


def wrk_script(body: bytes, headers: Mapping[str, str], limit: int | None = None) -> str:
    # Debian's wrk 4.1 ignores a global ``wrk.method``/``wrk.body`` (it sends GETs): build the
    # request explicitly, once, and hand the same bytes out for every request.
    pairs = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    lines = [
        f"local body = {_lua_string(body.decode())}",
        f"local headers = {{{pairs}}}",
        "local req = nil",
        "request = function()",
        '  if req == nil then req = wrk.format("POST", nil, headers, body) end',
        "  return req",
        "end",
    ]
    if limit is not None:
        # One wrk thread: stop it once ``limit`` answers came back (a request count, not a duration).
        lines += [
            "local answered = 0",
            "function response(status, headers, body)",
            "  answered = answered + 1",
            f"  if answered >= {limit} then wrk.thread:stop() end",
            "end",
        ]
    return "\n".join(lines) + "\n"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        out["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+)", output):
        out["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M):
            out[f"p{pct}_ms"] = round(_ms(m.group(1)), 3)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return out


def run_wrk(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    seconds: float,
    connections: int = 8,
    threads: int = 1,
    limit: int | None = None,
) -> dict[str, Any]:
    """Closed-loop load with wrk; returns requests/s, latency percentiles and error counts."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(wrk_script(body, headers, limit))
        script = Path(f.name)
    try:
        started = time.monotonic()
        done = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        result = parse_wrk(done.stdout)
        result["wall_seconds"] = round(time.monotonic() - started, 2)
        if done.stderr.strip():
            result["stderr"] = done.stderr[-500:]
        # wrk runs plain GETs when its script fails to load (a Lua error on stderr): never
        # report those figures.
        if done.returncode != 0 or "rps" not in result or ".lua" in done.stderr:
            result["error"] = (done.stderr or done.stdout)[-500:]
            result.pop("rps", None)
        return result
    finally:
        script.unlink(missing_ok=True)
