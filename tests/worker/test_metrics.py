"""Worker metrics under a threads pool (the recommended outbound worker)."""

from __future__ import annotations

import threading
import time

import pytest

from worker import metrics


def test_the_registry_is_built_once_when_many_threads_ask_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    class SlowMetrics:
        def __init__(self) -> None:
            time.sleep(0.05)  # widen the window two first callers could both fall into
            built.append(self)

    monkeypatch.setattr(metrics, "_Metrics", SlowMetrics)
    monkeypatch.setattr(metrics, "_instance", None)
    start = threading.Barrier(8)
    seen: list[object] = []

    def first_task() -> None:
        start.wait()
        seen.append(metrics._metrics())

    threads = [threading.Thread(target=first_task) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert all(m is built[0] for m in seen) and len(seen) == 8
