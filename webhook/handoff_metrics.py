"""People in the loop on ``/metrics``: read from the database on each scrape.

How many customers wait for a person, how long the oldest has waited, and how many
handoffs each flow asked for in the last day. Database state, not a process's counter, so
every receiver process reports the same values (aggregate with ``max``), and a database
that does not answer leaves these out of the scrape rather than fail it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.orm import Session

from conversation import handoff
from conversation.models import utcnow

log = logging.getLogger(__name__)
PER_FLOW_PERIOD = timedelta(hours=24)
WORD = "handoff_word"  # the flow label of handoffs asked for with PARLEY_HANDOFF_WORDS


class HandoffCollector:
    def __init__(self, scope: Callable[[], AbstractContextManager[Session]]) -> None:
        self.scope = scope

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        try:
            with self.scope() as session:
                count, oldest = handoff.waiting_summary(session, now)
                per_flow = handoff.requested_per_flow(session, now - PER_FLOW_PERIOD)
        except Exception as exc:  # the database is down or slow: the other metrics still answer
            log.debug("handoff metrics skipped: %s", exc.__class__.__name__)
            return
        yield GaugeMetricFamily("parley_handoffs_waiting", "Customers handed to a person and not released.", count)
        yield GaugeMetricFamily(
            "parley_handoffs_oldest_wait_seconds",
            "How long the longest-waiting handed-off customer has been with a person (0 when none).",
            oldest,
        )
        requested = GaugeMetricFamily(
            "parley_handoffs_requested_24h",
            "Handoffs asked for in the last 24 hours, by flow (handoff_word: the global word).",
            labels=["flow"],
        )
        for flow, n in sorted(per_flow.items(), key=lambda item: item[0] or ""):
            requested.add_metric([flow or WORD], float(n))
        yield requested
