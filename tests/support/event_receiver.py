"""An events receiver on loopback, as a helpdesk would run one for ``PARLEY_EVENTS_URL``.

It checks each POST's signature (401 when wrong), keeps each event id once however often
it comes, and refuses the first ``fail_first`` attempts of every event with a 503.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conversation import event_outbox


class Receiver:
    """A loopback endpoint that refuses the first ``fail_first`` attempts of each event."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts: dict[str, list[bytes]] = {}
        self.accepted: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not event_outbox.signature_matches(secret, body, self.headers.get(event_outbox.SIGNATURE_HEADER)):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                event_id = self.headers[event_outbox.ID_HEADER]
                with receiver.lock:
                    seen = receiver.attempts.setdefault(event_id, [])
                    seen.append(body)
                    refuse = len(seen) <= receiver.fail_first
                    if not refuse:
                        receiver.accepted.setdefault(event_id, json.loads(body))  # a repeat id is ignored
                if refuse:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/parley-events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The accepted events of ``kind``, in no particular order."""
        with self.lock:
            return [event for event in self.accepted.values() if event["type"] == kind]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
