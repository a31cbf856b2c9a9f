"""Hand work to the queue. The receiver calls ``enqueue_payload``; nothing else is needed.

``enqueue_payload`` returns only once the payload is in the broker, and raises
``QueueUnavailable`` otherwise (the receiver then answers 503 and Meta retries).

The payload is published by task name (:data:`PROCESS_PAYLOAD`) through the one Celery
app's ``send_task``, so the message is exactly the task message any Celery client sends
(routing, headers, kombu's envelope). This module imports neither the task module nor
the domain: a receiver process loads none of it.

With a Redis broker (production), the process keeps its broker connections, each with
its producer: a request takes an idle one (or opens one, when every kept connection is
busy with another request of this process) and gives it back once Redis confirmed the
push. Connect and socket timeouts of ``PUBLISH_TIMEOUT_SECONDS`` keep a down or
black-holed broker from holding a request longer. A connection that failed is closed,
never given back, so after a Redis restart the next request opens a fresh one: the
receiver recovers by itself.

Any other broker (the embedded SQLite one of ``make run``) takes Celery's ordinary path:
``send_task`` on the app's own producer pool.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Connection, Producer

log = logging.getLogger(__name__)

# The task's explicit name (worker/tasks.py); the worker routes it to the inbound queue.
PROCESS_PAYLOAD = "parley.inbound.process_payload"
# The longest a webhook request waits for the broker (connect, push, answer) before 503.
PUBLISH_TIMEOUT_SECONDS = 2.0


class QueueUnavailable(RuntimeError):
    """The broker did not take the message; the caller must not acknowledge it."""


def enqueue_payload(raw_body: str) -> None:
    """Queue one raw webhook body for processing, or raise QueueUnavailable."""
    try:
        publisher().publish(raw_body)
    except QueueUnavailable:
        raise
    except (KombuError, RedisError, OSError) as exc:  # the class name only: texts can carry URLs
        raise QueueUnavailable(exc.__class__.__name__) from exc


# --- one publisher per process ---------------------------------------------------------

_lock = threading.Lock()
_current: tuple[int, str, Publisher] | None = None


def publisher() -> Publisher:
    """This process's publisher for the Celery app's broker (a new one after a fork or
    when the broker URL changed)."""
    global _current
    from worker.celery_app import app

    url = app.conf.broker_url
    current = _current
    if current is not None and current[0] == os.getpid() and current[1] == url:
        return current[2]
    with _lock:
        current = _current
        if current is None or current[0] != os.getpid() or current[1] != url:
            made: Publisher = RedisPublisher(app) if _is_redis(app) else CeleryPublisher(app)
            if current is not None and current[0] == os.getpid():
                current[2].close()  # the broker URL changed (tests do that)
            _current = current = (os.getpid(), url, made)
    return current[2]


def _is_redis(app: Celery) -> bool:
    conn = app.connection_for_write()  # not connected: only the transport is looked at
    try:
        return conn.transport.driver_type == "redis"
    finally:
        conn.release()


class Publisher:
    """Sends :data:`PROCESS_PAYLOAD` messages on the Celery app ``app``."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, raw_body: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what this publisher holds (it is being replaced)."""

    def send(self, raw_body: str, producer: Producer | None = None) -> None:
        # No kombu retry: the caller answers 503 at once and Meta retries. ignore_result as
        # the task has it by default (there is no result backend).
        self.app.send_task(
            PROCESS_PAYLOAD,
            args=[raw_body],
            producer=producer,
            retry=False,
            ignore_result=self.app.conf.task_ignore_result,
        )


class CeleryPublisher(Publisher):
    """Celery's ordinary path: any broker, the app's producer pool, one publish per call."""

    def publish(self, raw_body: str) -> None:
        self.send(raw_body)


class RedisPublisher(Publisher):
    """Kept Redis connections with short timeouts, one per request publishing at once."""

    def __init__(self, app: Celery, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        super().__init__(app)
        self.timeout = timeout
        self._idle: list[tuple[Connection, Producer]] = []  # most recently used last
        self._idle_lock = threading.Lock()
        self.opened = 0  # connections opened so far (tests check they are kept, not per call)

    def publish(self, raw_body: str) -> None:
        connection, producer = self._take() or self._open()
        try:
            self.send(raw_body, producer)
        except BaseException:
            # Whatever state that socket is in (half a reply, a dead peer), never reuse it.
            _release(connection)
            raise
        with self._idle_lock:
            self._idle.append((connection, producer))

    def _take(self) -> tuple[Connection, Producer] | None:
        with self._idle_lock:
            return self._idle.pop() if self._idle else None

    def _open(self) -> tuple[Connection, Producer]:
        options = dict(self.app.conf.broker_transport_options or {})
        options.update(socket_connect_timeout=self.timeout, socket_timeout=self.timeout)
        connection = self.app.connection_for_write(transport_options=options)
        try:
            connection.ensure_connection(max_retries=0)  # one attempt, bounded by the timeouts
            producer = self.app.amqp.Producer(connection.default_channel, auto_declare=False)
        except BaseException:
            _release(connection)
            raise
        with self._idle_lock:
            self.opened += 1
        return connection, producer

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection, _producer in idle:
            _release(connection)


def _release(connection: Connection) -> None:
    try:
        connection.release()
    except Exception as exc:  # closing a broken socket may fail too; it is dropped either way
        log.debug("broker connection dropped: %s", exc.__class__.__name__)
