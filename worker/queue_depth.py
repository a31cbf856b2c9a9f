"""The queue-depth metrics, read from the Redis broker on each scrape.

The worker exporter and the receiver's ``/metrics`` both register
``QueueDepthCollector``; it imports ``prometheus_client`` only when collecting, for the
reason ``worker/metrics.py`` gives (multiprocess mode is chosen at first import).
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

# kombu's Redis transport keeps priorities 3, 6, 9 of a queue in sibling lists.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    # A scrape must answer fast even when Redis does not.
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


# Close the cached clients while the interpreter is whole: at teardown their __del__ fails.
atexit.register(_redis.cache_clear)


class QueueDepthCollector:
    """``parley_queue_depth{queue}`` (LLEN of each queue, priorities summed), messages
    taken but not acknowledged (running, or waiting for their countdown), how long each
    queue's oldest message has waited, and whether the broker answered. Only for a
    Redis broker."""

    def __init__(self, broker_url: str, queues: Sequence[str]) -> None:
        self.broker_url = broker_url
        self.queues = tuple(queues)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("parley_broker_up", "1 when the broker answered the queue-depth probe of this scrape.")
        try:
            pipe = _redis(self.broker_url).pipeline(transaction=False)
            for queue in self.queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            pipe.hlen("unacked")
            for queue in self.queues:
                pipe.lindex(queue, -1)  # the oldest message (kombu pushes left, pops right)
            replies = pipe.execute()
        except Exception as exc:  # the broker is down or slow: say so, never fail the scrape
            log.debug("queue depth probe failed: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        split = len(replies) - len(self.queues)
        sizes, oldest = replies[:split], replies[split:]
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily("parley_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        n = len(_PRIORITY_SUFFIXES)
        for i, queue in enumerate(self.queues):
            depth.add_metric([queue], float(sum(sizes[i * n : (i + 1) * n])))
        yield depth
        yield GaugeMetricFamily(
            "parley_queue_unacked",
            "Messages a worker has taken but not acknowledged (running, or held for a countdown).",
            value=float(sizes[-1]),
        )
        from worker.health import message_age

        now = time.time()
        age = GaugeMetricFamily(
            "parley_queue_oldest_age_seconds",
            "How long the oldest message waiting in each queue has waited (0: empty); grows when nothing consumes it.",
            labels=["queue"],
        )
        for queue, raw in zip(self.queues, oldest, strict=True):
            age.add_metric([queue], message_age(raw, now))
        yield age
