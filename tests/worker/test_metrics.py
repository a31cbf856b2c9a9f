"""Worker metrics under a threads pool (the recommended outbound worker)."""

from __future__ import annotations

import threading
import time

from worker import metrics


def test_the_registry_is_built_once_when_many_threads_ask_at_once() -> None:
    built: list[object] = []

    class SlowMetrics:
        def __init__(self) -> None:
            time.sleep(0.05)  # widen the window two first callers could both fall into
            built.append(self)

    registry = metrics.BuiltOnce(SlowMetrics)  # as WORKER_METRICS, the one every worker metric comes from
    start = threading.Barrier(8)
    seen: list[object] = []

    def first_task() -> None:
        start.wait()
        seen.append(registry.get())

    threads = [threading.Thread(target=first_task) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert all(m is built[0] for m in seen) and len(seen) == 8
    assert isinstance(metrics.WORKER_METRICS, metrics.BuiltOnce)
