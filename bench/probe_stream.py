"""A/B probe for the batched pipeline: a Redis Stream inbox drained in batches, against today's stack.

Not parley's code path: a measured sketch of the designs the queue-cost issue proposes,
built from parley's own domain functions, so that their cost per message can be set beside
today's pipeline and the in-request bot in one run, under the same machine noise. Every
design has the same receiver (``bench/probe_receiver.py``: check the signature, ``XADD``
the raw body, answer; it imports neither the domain nor Celery) and two consumer
processes, each taking whatever waits in the stream (``XREADGROUP COUNT 100``, never lingering for more), running
the batch in one transaction and ``XACK``ing after the commit. They differ in the turn and
the sender:

- b1 "inline": ``process_event`` per message under a savepoint; the new rows marked
  ``sending`` in the same transaction; the batch's sends (customers concurrently, each
  customer's in order) finish before the next batch is read;
- b2 "pipelined": as b1, but each customer's rows go to a send pool chained per customer
  and the consumer reads on; Graph's answers are stored in natural batches;
- b3 "safe": rows stay ``pending``; a sender takes a batch of customers with
  ``pg_try_advisory_xact_lock``, marks their open rows ``sending`` (committed before any
  HTTP call), sends, settles all answers in one statement and commits, which lets the
  customers go. The lock dies with the connection, so a killed consumer holds nobody up;
  ``XAUTOCLAIM`` hands its unacknowledged entries to a live one after 2 s;
- b4 "batched": b3 with the set-based turn of ``bench/probe_batch_turn.py`` (one statement
  per kind of row for the whole batch);
- b5 "replyfirst": b4 with read receipts sent beside the replies instead of before them,
  a batch of one customer sent on its own thread, and 32 sender threads instead of 8;
- b6 "sessionlock": b5 whose sender takes session advisory locks on one autocommit
  connection: lock and mark in one statement, the sends, settle and unlock in another.

What the sketch leaves out, and the real design would need: dead-lettering a poison
message and the apology, retries of refused sends, delivery statuses, trimming the stream.
None of those is on the happy path this probe measures.

The side-by-side runs that measure these designs are in ``bench/probe_run.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

import redis
from sqlalchemy import text

STREAM = "parley:probe:inbound"
GROUP = "probe"
BATCH = 100
# An entry read and not acknowledged this long is taken as a dead consumer's (a batch takes well under it).
RECLAIM_IDLE_MS = 2000
# How long the pipelined sender lets Graph's answers gather before storing them in one statement.
SETTLE_LINGER = float(os.environ.get("PROBE_SETTLE_LINGER", "0.02"))


_SENDING = text(
    "UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now() "
    "WHERE id = ANY(:ids) RETURNING id, user_key, kind, content, phone_number_id, to_phone, to_user_id"
)
_TRY_LOCKS = text(
    "SELECT k FROM unnest(CAST(:keys AS text[])) AS k WHERE pg_try_advisory_xact_lock(hashtextextended(k, 0))"
)
_OPEN_ROWS = text(
    "SELECT id, user_key, kind, content, phone_number_id, to_phone, to_user_id FROM outbound_messages "
    "WHERE user_key = ANY(CAST(:keys AS text[])) AND status IN ('pending', 'sending') ORDER BY id"
)
_MARK_SENDING = text(
    "UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, updated_at = now() WHERE id = ANY(:ids)"
)
_ACCEPTED = text(
    "UPDATE outbound_messages AS o SET status = 'accepted', wamid = v.wamid, updated_at = now() "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:wamids AS text[])) AS v(id, wamid) WHERE o.id = v.id"
)
# b6, in one round trip: lock every customer it can (a session lock, which outlives the
# autocommit and dies with the connection) and mark their open rows sending; the rows come
# back with the locked keys (rows of id NULL name a locked customer).
_LOCK_AND_MARK = text(
    "WITH locked AS MATERIALIZED (SELECT k FROM unnest(CAST(:keys AS text[])) AS k"
    " WHERE pg_try_advisory_lock(hashtextextended(k, 0))),"
    " marked AS (UPDATE outbound_messages AS o SET status = 'sending', attempts = o.attempts + 1, updated_at = now()"
    " FROM locked WHERE o.user_key = locked.k AND o.status IN ('pending', 'sending')"
    " RETURNING o.id, o.user_key, o.kind, o.content, o.phone_number_id, o.to_phone, o.to_user_id)"
    " SELECT NULL::bigint AS id, k AS user_key, NULL AS kind, NULL::jsonb AS content, NULL AS phone_number_id,"
    " NULL AS to_phone, NULL AS to_user_id FROM locked"
    " UNION ALL SELECT * FROM marked ORDER BY id NULLS FIRST"
)
# b6, in one round trip after the sends: store Graph's answers, then let the customers go.
# The unlock takes effect before this statement commits. A sender that takes a lock in that
# gap and reaches these rows waits on their row locks, and then (READ COMMITTED re-checks
# an updated row against its WHERE) finds them accepted and leaves them: nothing goes twice.
_SETTLE_AND_UNLOCK = text(
    "WITH settled AS (UPDATE outbound_messages AS o SET status = 'accepted', wamid = v.wamid, updated_at = now()"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:wamids AS text[])) AS v(id, wamid) WHERE o.id = v.id RETURNING 1)"
    " SELECT (SELECT count(*) FROM settled),"
    " (SELECT count(*) FROM unnest(CAST(:keys AS text[])) AS k WHERE pg_advisory_unlock(hashtextextended(k, 0)))"
)


def consume(name: str, stream: str, mode: str) -> None:
    """One consumer process, taking batches until it is killed; ``mode`` is one of ``MODES``,
    the designs b1-b6 of this module's docstring in order."""
    from bench.probe_batch_turn import process_batch
    from conversation.db import get_engine, session_scope, use_engine_options
    from conversation.engine_settings import engine_config
    from conversation.logs import configure_logging
    from conversation.payload import parse_payload
    from conversation.turn import process_event
    from settings import get_settings
    from worker.graph_api import GraphClient

    settings = get_settings()
    use_engine_options(pool_pre_ping=False)
    configure_logging(settings, level=logging.WARNING)
    config = engine_config(settings)
    client = GraphClient.from_settings(settings)
    r = redis.Redis.from_url(settings.broker_url)
    try:
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    pool = ThreadPoolExecutor(64)
    pipelined = mode == "pipelined"
    reply_first = mode in ("replyfirst", "sessionlock")
    session_locks = mode == "sessionlock"
    settled: queue.Queue[tuple[int, str | None]] = queue.Queue()
    tails: dict[str, Future[None]] = {}
    in_flight = threading.BoundedSemaphore(256)

    def send_rows(rows: list[Any], before: Future[None] | None) -> list[tuple[int, str | None]]:
        """One customer's rows, in order, after that customer's previous rows (``before``)."""
        if before is not None:
            futures_wait([before])
        out: list[tuple[int, str | None]] = []
        for job in rows:
            if job.kind == "mark_read":
                client.mark_read(job.phone_number_id, job.content["message_id"])
                out.append((job.id, None))
            else:
                out.append((job.id, client.send(job.phone_number_id, job.to_phone, job.to_user_id, job.content).wamid))
        return out

    def store(done: list[tuple[int, str | None]]) -> None:
        with session_scope() as session:
            session.execute(_ACCEPTED, {"ids": [i for i, _ in done], "wamids": [w for _, w in done]})

    def settler() -> None:
        """Natural batching of the answers: one statement for whatever Graph answered meanwhile."""
        while True:
            done = [settled.get()]
            time.sleep(SETTLE_LINGER)  # the customer has their reply already; let answers gather
            while len(done) < 1000:
                try:
                    done.append(settled.get_nowait())
                except queue.Empty:
                    break
            store(done)

    def pipelined_send(user_key: str, rows: list[Any]) -> None:
        in_flight.acquire()
        before = tails.get(user_key)

        def task() -> None:
            try:
                for item in send_rows(rows, before):
                    settled.put(item)
            finally:
                in_flight.release()

        future = pool.submit(task)
        tails[user_key] = future
        future.add_done_callback(lambda f: tails.pop(user_key, None) if tails.get(user_key) is f else None)

    if pipelined:
        threading.Thread(target=settler, daemon=True).start()
    batched = mode in ("batched", "replyfirst", "sessionlock")
    safe = mode in ("safe", "batched", "replyfirst", "sessionlock")
    engine = get_engine()
    batches = ThreadPoolExecutor(32 if reply_first else 8)

    busy: set[str] = set()  # customers a batch of this process is sending to right now
    waiting: set[str] = set()  # customers with new rows meanwhile: sent when that batch is done
    guard = threading.Lock()

    def hand_on(keys: set[str]) -> None:
        """Send these customers' rows: at once, or after this process's batch in flight for them."""
        with guard:
            waiting.update(keys & busy)
            free = keys - busy
            busy.update(free)
        if free:
            batches.submit(sender, sorted(free))

    def send_jobs(jobs: list[Any]) -> list[tuple[int, str | None]]:
        """Every customer's rows concurrently, each customer's in order; Graph's answers."""
        # b5 on: read receipts go beside the replies, not before them (no order to keep there)
        aside = [j for j in jobs if reply_first and j.kind == "mark_read"]
        receipts = [pool.submit(send_rows, [j], None) for j in aside]
        per_user: dict[str, list[Any]] = defaultdict(list)
        for job in jobs:
            if not (reply_first and job.kind == "mark_read"):
                per_user[job.user_key].append(job)
        if reply_first and len(per_user) <= 1:  # one customer: no hop to the pool and back
            done = send_rows(next(iter(per_user.values()), []), None)
        else:
            done = [item for out in pool.map(lambda rows: send_rows(rows, None), per_user.values()) for item in out]
        return done + [item for f in receipts for item in f.result()]

    def send_session_locked(keys: list[str]) -> None:
        """b6: the b3 protocol in three round trips, on one autocommit connection: lock and mark
        (committed before any HTTP call), the sends, then settle and unlock in one statement.

        A session lock dies with its connection, as the transaction's did; on any error the
        connection is invalidated rather than handed back to the pool still holding locks."""
        got = keys
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                try:
                    rows = list(conn.execute(_LOCK_AND_MARK, {"keys": keys}))
                    got = [r.user_key for r in rows if r.id is None]
                    missed = set(keys) - set(got)
                    if missed:
                        threading.Timer(0.005, lambda: batches.submit(sender, sorted(missed))).start()
                    jobs = [r for r in rows if r.id is not None]
                    done = send_jobs(jobs) if jobs else []
                    conn.execute(
                        _SETTLE_AND_UNLOCK,
                        {"ids": [i for i, _ in done], "wamids": [w for _, w in done], "keys": got},
                    )
                except BaseException:
                    conn.invalidate()  # closes it: its locks go with it
                    raise
        finally:
            release(set(got))

    def release(finished: set[str]) -> None:
        """This process is done with these customers: send again to those with rows meanwhile."""
        with guard:
            again = waiting & finished
            waiting.difference_update(again)
            busy.difference_update(finished - again)
        if again:
            batches.submit(sender, sorted(again))

    def send_locked(keys: list[str]) -> None:
        """The crash-safe sender: one transaction holds every customer's lock while their rows go out.

        The locks die with the connection (a killed process frees its customers at once) and are
        released by the commit that stores Graph's answers, so the next holder never resends them.
        A customer whose lock another process holds is tried again shortly (their rows may be
        newer than what that process read).
        """
        got = keys  # until the locks are known: on an error every one of them is let go
        try:
            with engine.connect() as conn:
                got = list(conn.execute(_TRY_LOCKS, {"keys": keys}).scalars())
                missed = set(keys) - set(got)
                if missed:
                    threading.Timer(0.005, lambda: batches.submit(sender, sorted(missed))).start()
                jobs = list(conn.execute(_OPEN_ROWS, {"keys": got})) if got else []
                if jobs:
                    with engine.begin() as marks:  # committed before the HTTP calls: a crash counts the attempt
                        marks.execute(_MARK_SENDING, {"ids": [j.id for j in jobs]})
                    done = send_jobs(jobs)
                    conn.execute(_ACCEPTED, {"ids": [i for i, _ in done], "wamids": [w for _, w in done]})
                conn.commit()
        finally:
            release(set(got))

    sender = send_session_locked if session_locks else send_locked

    def reclaim() -> list[Any]:
        """Entries a dead consumer read and never acknowledged, idle long enough to be its."""
        claimed = r.xautoclaim(stream, GROUP, name, min_idle_time=RECLAIM_IDLE_MS, start_id="0-0", count=BATCH)
        return list(claimed[1])

    last_reclaim = 0.0

    while True:
        entries: list[Any] = []
        if safe and time.monotonic() - last_reclaim > 0.5:
            last_reclaim = time.monotonic()
            entries = reclaim()
        if not entries:
            reply = r.xreadgroup(GROUP, name, {stream: ">"}, count=BATCH, block=500 if safe else 1000)
            if not reply:
                continue
            entries = reply[0][1]
        events = [e for _, fields in entries for e in parse_payload(fields[b"b"]).messages]
        events.sort(key=lambda e: e.user.key)  # stable: a customer's messages keep their arrival order
        to_send: set[str] = set()
        with session_scope() as session:
            outbox_ids: list[int] = []
            for result in process_batch(session, events, config, settings.mark_as_read) if batched else ():
                outbox_ids.extend(result.outbox_ids)
                if result.outbox_ids or result.duplicate:
                    to_send.add(result.user_key)
            for event in () if batched else events:
                savepoint = session.begin_nested()
                try:
                    result = process_event(session, event, config, mark_as_read=settings.mark_as_read)
                except Exception:
                    savepoint.rollback()
                    logging.getLogger(__name__).exception("probe: message failed")
                    continue
                savepoint.commit()
                outbox_ids.extend(result.outbox_ids)
                if result.outbox_ids or result.duplicate:  # a duplicate: a redelivery, its rows may be unsent
                    to_send.add(result.user_key)
            marked = outbox_ids and not safe  # the safe sender marks them itself, under the customer's lock
            jobs = list(session.execute(_SENDING, {"ids": outbox_ids})) if marked else []
        r.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
        if safe:
            if to_send:
                hand_on(to_send)
            continue
        per_user: dict[str, list[Any]] = defaultdict(list)
        for job in sorted(jobs, key=lambda j: j.id):
            per_user[job.user_key].append(job)
        if pipelined:
            for user_key, rows in per_user.items():
                pipelined_send(user_key, rows)
        elif per_user:  # inline: the batch's sends finish before the next batch is read
            store([item for done in pool.map(lambda rows: send_rows(rows, None), per_user.values()) for item in done])


MODES = ("inline", "pipelined", "safe", "batched", "replyfirst", "sessionlock")


def main(argv: list[str] | None = None) -> int:
    """``consume NAME STREAM MODE``: one consumer process, as ``bench/probe_run.py`` starts them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("consume")
    c.add_argument("name")
    c.add_argument("stream")
    c.add_argument("mode", choices=MODES)
    args = parser.parse_args(argv)
    consume(args.name, args.stream, args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
