"""py-spy profiles of running processes, summarised as where the wall-clock time went.

``py-spy record --idle`` samples every thread whether it runs or waits, so a sample whose
innermost frame is psycopg's ``Connection.wait`` is time spent waiting for Postgres, one in
a socket read under urllib3 is time waiting for the Graph API, and so on. The raw
collapsed-stack files are kept in ``bench/results/`` (flamegraph.pl and speedscope read them).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import BIN, RESULTS_DIR

PY_SPY = str(BIN / "py-spy")


def start_record(pid: int, seconds: float, name: str, rate: int = 100) -> tuple[subprocess.Popen[bytes], Path]:
    """Start sampling ``pid`` and its children for ``seconds``; returns the process and raw file."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"profile-{name}.txt"
    proc = subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--idle",
            "--rate",
            str(rate),
            "--duration",
            str(max(1, round(seconds))),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, raw


def finish(procs: Sequence[tuple[subprocess.Popen[bytes], Path]], timeout: float = 60) -> list[Path]:
    paths = []
    for proc, raw in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if raw.exists():
            paths.append(raw)
    return paths


def read_stacks(paths: Sequence[Path]) -> list[tuple[list[str], int]]:
    stacks = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            head, _, count = line.rpartition(" ")
            if head and count.isdigit():
                stacks.append((_split(head), int(count)))
    return stacks


def _split(head: str) -> list[str]:
    # Process frames quote a command line that may itself contain ";" characters.
    return [f for f in re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', head) if f]


_WAIT_LEAF = re.compile(
    r"^(Connection\.wait|wait|select|poll|_poll|recv|recv_into|readinto|_recv|accept|read|sleep|_read_from_socket)\b"
)


def _is_wait(leaf: str) -> bool:
    func = leaf.split(" (", 1)[0].split(".")[-1]
    return bool(_WAIT_LEAF.match(func)) or leaf.startswith(("Connection.wait", "_PollLikeSelector.select"))


def category(frames: list[str]) -> str:
    """Where one sample was: waiting on what, or running what (by the innermost frame's file)."""
    leaf = frames[-1] if frames else ""
    joined = ";".join(frames)
    if "psycopg" in leaf and "wait" in leaf.lower():
        return "wait: Postgres"
    if _is_wait(leaf):
        if "urllib3" in joined or "requests/" in joined or "http/client" in joined:
            return "wait: Graph API (HTTP)"
        if "kombu" in joined or "redis/" in joined:
            if "process_payload" in joined or "deliver (worker" in joined or "apply_async" in joined:
                return "wait: Redis (publish)"
            if "receive (webhook" in joined:
                return "wait: Redis (publish)"
            return "idle: waiting for a task"
        if "billiard" in joined or "celery" in joined or "gunicorn" in joined:
            return "idle: waiting for a task"
        if "threading.py" in leaf or "Event.wait" in joined or "Condition.wait" in joined:
            return "idle: thread waiting"
        return "wait: other I/O"
    file = leaf.split(" (", 1)[-1]
    for marker, name in (
        ("sqlalchemy/", "cpu: SQLAlchemy"),
        ("psycopg/", "cpu: psycopg"),
        ("pydantic", "cpu: pydantic"),
        ("conversation/", "cpu: parley conversation/"),
        ("templates/", "cpu: parley templates/"),
        ("worker/", "cpu: parley worker/"),
        ("webhook/", "cpu: parley webhook/"),
        ("json/", "cpu: json"),
        ("logging/", "cpu: logging"),
        ("celery/", "cpu: Celery/kombu/billiard"),
        ("kombu/", "cpu: Celery/kombu/billiard"),
        ("billiard/", "cpu: Celery/kombu/billiard"),
        ("redis/", "cpu: redis client"),
        ("urllib3/", "cpu: HTTP client (requests/urllib3)"),
        ("requests/", "cpu: HTTP client (requests/urllib3)"),
        ("http/", "cpu: HTTP client (requests/urllib3)"),
        ("werkzeug/", "cpu: Flask/Werkzeug"),
        ("flask/", "cpu: Flask/Werkzeug"),
        ("gunicorn/", "cpu: gunicorn"),
    ):
        if marker in file:
            return name
    return "cpu: other"


def task_of(frames: list[str]) -> str:
    """Which work a sample belongs to; with ``--subprocesses`` each stack starts with its
    process chain, so a child (pool process, gunicorn worker) has two ``process`` frames."""
    joined = ";".join(frames)
    if "process_payload (worker/tasks.py" in joined:
        return "inbound task (process_payload)"
    if "deliver (worker/tasks.py" in joined:
        return "outbound task (deliver)"
    if "receive (webhook/receiver.py" in joined:
        return "webhook request"
    child = len(frames) > 1 and frames[1].startswith("process ")
    return "child process, outside a task/request" if child else "main process (Celery consumer / gunicorn master)"


def summarize(paths: Sequence[Path], top: int = 15) -> dict[str, Any]:
    """Shares of samples by task, by category, top innermost frames and top parley frames."""
    stacks = read_stacks(paths)
    total = sum(n for _, n in stacks) or 1
    by_task: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_task_category: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    parley: Counter[str] = Counter()
    busy_total = 0
    for frames, n in stacks:
        task = task_of(frames)
        cat = category(frames)
        by_task[task] += n
        by_category[cat] += n
        by_task_category[f"{task} | {cat}"] += n
        if not cat.startswith("idle"):
            busy_total += n
            leaves[frames[-1]] += n
            seen = set()
            for frame in frames:
                func = re.sub(r":\d+\)$", ")", frame)
                if func in seen:
                    continue
                seen.add(func)
                if "(conversation/" in frame or "(worker/" in frame or "(webhook/" in frame or "(templates/" in frame:
                    parley[func] += n

    def shares(counter: Counter[str], base: int) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / base, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "busy_samples": busy_total,
        "by_task_pct": shares(by_task, total),
        "by_category_pct": shares(by_category, total),
        "by_task_and_category_pct": shares(by_task_category, total),
        "busy_by_category_pct": [
            (k, round(100.0 * v / max(busy_total, 1), 1))
            for k, v in by_category.most_common()
            if not k.startswith("idle")
        ],
        "top_frames_pct_of_busy": shares(leaves, max(busy_total, 1)),
        "top_parley_functions_pct_of_busy": shares(parley, max(busy_total, 1)),
        "raw_files": [str(p) for p in paths],
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.profile bench/results/profile-e2e-workers-*.txt``: print the summary."""
    import json
    import sys

    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    print(json.dumps(summarize(paths, top=25), indent=1))


if __name__ == "__main__":
    main()
