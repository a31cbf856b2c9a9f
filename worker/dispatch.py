"""Hand work to the queue. The receiver calls ``enqueue_payload``; nothing else is needed.

``enqueue_payload`` returns only once the payload is in the broker, and raises
``QueueUnavailable`` otherwise (the receiver then answers 503 and Meta retries).

With a Redis broker (production), each process keeps one kombu connection and producer
(instead of ``apply_async``'s per-call pool, client and declaration machinery), and the
message is still built by Celery itself: ``process_payload.apply_async`` on that producer,
so it is exactly the task message any Celery client sends (routing, headers, time limits,
kombu's envelope, the priority queue key). Only kombu's last step, the channel's ``LPUSH``
of the serialised message, is handed to one publisher thread per process, which pushes
the messages of every request waiting at that moment with a single ``LPUSH inbound m1 m2
...``: one round trip for all of them, applied all or nothing. Each request waits for
Redis' answer on its own event, at most ``PUBLISH_TIMEOUT_SECONDS``; connect and socket
timeouts of the same length keep a black-holed broker from holding the thread longer.

Any other broker (the embedded SQLite one of ``make run``) takes Celery's ordinary path,
one ``apply_async`` per request.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

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
            from worker.tasks import process_payload

            made: Publisher = RedisPublisher(process_payload) if _is_redis(app) else CeleryPublisher(process_payload)
            if current is not None and current[0] == os.getpid():
                current[2].close()  # the broker URL changed (tests do that)
            _current = current = (os.getpid(), url, made)
    return current[2]


def _is_redis(app: Any) -> bool:
    from kombu.transport.redis import Channel

    conn = app.connection_for_write()
    try:
        return issubclass(conn.transport.Channel, Channel)
    finally:
        conn.release()


class Publisher:
    def publish(self, raw_body: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what this publisher holds (it is being replaced)."""


class CeleryPublisher(Publisher):
    """Celery's ordinary path: any broker, one ``apply_async`` (and round trip) per call."""

    def __init__(self, task: Any) -> None:
        self.task = task

    def publish(self, raw_body: str) -> None:
        self.task.apply_async(args=[raw_body], retry=False)


class RedisPublisher(Publisher):
    """Celery builds the message on a producer this process keeps; a :class:`Pusher`
    thread LPUSHes the messages of concurrent requests together."""

    def __init__(self, task: Any, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        self.task = task
        self.timeout = timeout
        self._producer: Any = None
        self._connecting = threading.Lock()
        self.connection: Any = None
        self.pusher: Pusher | None = None

    def publish(self, raw_body: str) -> None:
        producer = self._producer or self._connect()
        # declare=[]: the queue was declared once when connecting (see _open); kombu
        # would otherwise re-bind it to the channel on every publish just to find it cached.
        self.task.apply_async(args=[raw_body], producer=producer, retry=False, declare=[])

    def _connect(self) -> Any:
        # One request connects; the others wait for it, but never past their own deadline.
        if not self._connecting.acquire(timeout=self.timeout):
            raise QueueUnavailable("broker connection in progress")
        try:
            if self._producer is None:
                self._producer = self._open()
            return self._producer
        finally:
            self._connecting.release()

    def _open(self) -> Any:
        app = self.task.app
        options = dict(app.conf.broker_transport_options or {})
        options.update(socket_connect_timeout=self.timeout, socket_timeout=self.timeout)
        connection = app.connection_for_write(transport_options=options)
        try:
            connection.ensure_connection(max_retries=0)  # one attempt, bounded by the timeouts
            channel = connection.default_channel
            producer = app.amqp.Producer(channel, auto_declare=False)
            # What apply_async would declare on every publish, declared once per connection.
            producer.maybe_declare(app.amqp.router.route({}, self.task.name, None, None, self.task)["queue"])
            with channel.conn_or_acquire() as client:  # the client kombu's own _put would use
                pusher = Pusher(client, self.timeout)
        except BaseException:
            connection.release()
            raise
        channel._put = pusher.channel_put(channel)
        self.connection, self.pusher = connection, pusher
        return producer

    def close(self) -> None:
        if self.pusher is not None:
            self.pusher.close()
        if self.connection is not None:
            self.connection.release()


class _Waiter:
    __slots__ = ("data", "done", "error", "key", "taken")

    def __init__(self, key: str, data: str) -> None:
        self.key = key
        self.data = data
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.taken = False  # in a push already: the outcome is Redis' answer, not our timeout


class Pusher:
    """One daemon thread that LPUSHes, in one command per queue key, every message waiting.

    ``push`` blocks its caller until Redis confirmed the command holding its message, and
    raises QueueUnavailable when Redis refused it or did not answer within ``timeout``.
    A message whose caller gave up before it was taken is dropped, so a 503 means "not
    queued" except when the push was already under way (then the message may be queued
    as well: a duplicate the worker deduplicates by wamid, never a loss).
    """

    def __init__(self, client: Any, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Waiter] = deque()
        self.batches = 0  # pushes made (for tests and curiosity)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="parley-publisher", daemon=True)
        self._thread.start()

    def channel_put(self, channel: Any) -> Any:
        """A replacement for the kombu Redis channel's ``_put``: the same key and bytes,
        pushed by this thread."""
        from kombu.utils.json import dumps

        def _put(queue: str, message: dict[str, Any], **_: Any) -> None:
            priority = channel._get_message_priority(message, reverse=False)
            self.push(channel._q_for_pri(queue, priority), dumps(message))

        return _put

    def push(self, key: str, data: str) -> None:
        waiter = _Waiter(key, data)
        with self._cond:
            self._pending.append(waiter)
            self._cond.notify()
        if not waiter.done.wait(self.timeout):
            with self._cond:
                if not waiter.taken:
                    self._pending.remove(waiter)
                    raise QueueUnavailable("broker did not answer in time; not queued")
            if not waiter.done.is_set():
                raise QueueUnavailable("broker did not answer in time")
        if waiter.error is not None:
            raise QueueUnavailable(waiter.error.__class__.__name__) from waiter.error

    def close(self) -> None:
        """Stop the thread once nothing is pending."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    if self._closed:
                        return
                    self._cond.wait()
                batch = list(self._pending)
                self._pending.clear()
                for waiter in batch:
                    waiter.taken = True
            error = self._push(batch)
            for waiter in batch:
                waiter.error = error
                waiter.done.set()

    def _push(self, batch: list[_Waiter]) -> BaseException | None:
        by_key: dict[str, list[str]] = {}
        for waiter in batch:
            by_key.setdefault(waiter.key, []).append(waiter.data)
        try:
            if len(by_key) == 1:
                [(key, values)] = by_key.items()
                self.client.lpush(key, *values)
            else:
                with self.client.pipeline(transaction=False) as pipe:
                    for key, values in by_key.items():
                        pipe.lpush(key, *values)
                    pipe.execute()
        except Exception as exc:  # every waiter of this push gets the error; the thread lives on
            return exc
        finally:
            self.batches += 1
        return None
