"""``flask --app webhook chat``: the simulator's conversation in a terminal.

By default every line goes the real way (a signed webhook to the receiver, the queue, a
worker, the sandbox Graph API) and the replies are read back from ``/sandbox/messages``.
``--in-process`` runs the engine right here on the database instead (no receiver, no
worker) and prints the replies it would send. Options are numbered: typing ``2`` taps
the second option of the last message, when that message has options.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import click
import requests
from flask import current_app
from flask.cli import with_appcontext

from settings import Settings
from webhook.console.webhooks import BSUID, Tap, inbound_webhook, new_wamid, normalize_user, post_webhook

QUIET_SECONDS = 0.5  # replies of one step arrive together; this long without one ends the turn


@dataclass
class Reply:
    content: dict[str, Any]
    wamid: str | None = None


@dataclass
class Rendered:
    lines: list[str] = field(default_factory=list)
    options: list[Tap] = field(default_factory=list)


def render(content: dict[str, Any], wamid: str | None = None) -> Rendered:
    """A bot message as terminal lines, with its options numbered from 1."""
    out = Rendered()
    if content.get("type") == "text":
        out.lines += str(content.get("text", {}).get("body", "")).splitlines() or [""]
        return out
    message = content.get("interactive", {})
    if (header := message.get("header", {}).get("text")) is not None:
        out.lines.append(click.style(str(header), bold=True))
    out.lines += str(message.get("body", {}).get("text", "")).splitlines()
    if (footer := message.get("footer", {}).get("text")) is not None:
        out.lines.append(click.style(str(footer), dim=True))
    action = message.get("action", {})
    if message.get("type") == "button":
        for b in action.get("buttons", []):
            out.options.append(Tap(b["reply"]["id"], b["reply"]["title"], "button", context_wamid=wamid))
            out.lines.append(f"  {len(out.options)}) {b['reply']['title']}")
    elif message.get("type") == "list":
        out.lines.append(f"  [{action.get('button', 'Options')}]")
        for section in action.get("sections", []):
            out.lines.append(click.style(f"  {section.get('title', '')}", underline=True))
            for row in section.get("rows", []):
                out.options.append(Tap(row["id"], row["title"], "list", row.get("description"), wamid))
                about = f" - {row['description']}" if row.get("description") else ""
                out.lines.append(f"  {len(out.options)}) {row['title']}{about}")
    return out


class Transport(Protocol):
    def send(self, text: str | None, tap: Tap | None) -> Iterator[Reply]: ...


class Pipeline:
    """Through the receiver and a worker; replies read from the sandbox Graph API."""

    def __init__(self, settings: Settings, base_url: str, user: str, name: str, timeout: float) -> None:
        if not settings.sandbox:
            raise click.ClickException(
                "WHATSAPP_ACCESS_TOKEN is set, so replies go to Meta, not the sandbox: use --in-process"
            )
        self.settings, self.base_url, self.user, self.name, self.timeout = settings, base_url, user, name, timeout
        self.recipient = user if BSUID.match(user) else "+" + user
        self.after_id = self._last_id()

    def _page(self, after_id: int) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"recipient": self.recipient, "after_id": after_id, "limit": 1000}
        try:
            answer = requests.get(f"{self.base_url}/sandbox/messages", params=params, timeout=5)
        except requests.ConnectionError:
            raise click.ClickException(
                f"nothing answers at {self.base_url}: is the receiver running (make run)?"
            ) from None
        answer.raise_for_status()
        return answer.json()

    def _last_id(self) -> int:
        """Skip the customer's earlier history: only this session's replies are shown."""
        last = 0
        while page := self._page(last):
            last = page[-1]["id"]
        return last

    def send(self, text: str | None, tap: Tap | None) -> Iterator[Reply]:
        body = inbound_webhook(self.user, text=text, tap=tap, name=self.name, wamid=new_wamid())
        answer = post_webhook(body, self.settings, f"{self.base_url}/webhook")
        if answer.status_code != 200:
            raise click.ClickException(f"the receiver answered {answer.status_code}: {answer.text.strip()[:200]}")
        deadline, quiet_until, handled = time.monotonic() + self.timeout, None, False
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            for row in self._page(self.after_id):
                self.after_id = row["id"]
                handled = True  # a read receipt also proves a worker took the message
                quiet_until = time.monotonic() + QUIET_SECONDS
                if row["kind"] == "message":
                    yield Reply(row["body"], row["wamid"])
            time.sleep(0.1)
        if not handled:
            yield Reply(
                {"type": "text", "text": {"body": f"(no reply after {self.timeout:g} s: is a worker running?)"}}
            )


class InProcess:
    """The engine on this process's database session: no receiver, no worker."""

    def __init__(self, settings: Settings, user: str, name: str) -> None:
        self.settings, self.user, self.name = settings, user, name

    def send(self, text: str | None, tap: Tap | None) -> Iterator[Reply]:
        # Imported here: the terminal chat over HTTP needs none of the engine.
        from conversation.db import session_scope
        from conversation.engine_settings import engine_config
        from conversation.payload import parse_payload
        from conversation.turn import answer_here

        body = inbound_webhook(self.user, text=text, tap=tap, name=self.name, wamid=new_wamid())
        replies: list[Reply] = []
        for event in parse_payload(json.dumps(body)).messages:
            with session_scope() as session:
                for content in answer_here(session, event, engine_config(self.settings)):
                    replies.append(Reply(content, f"wamid.CHAT{uuid.uuid4().hex}"))
        yield from replies


def converse(transport: Transport, read_line: Any = input) -> None:
    """The read-send-print loop; ends on EOF or /quit."""
    options: list[Tap] = []
    while True:
        try:
            line = read_line("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if line in {"/quit", "/exit"}:
            break
        if not line:
            continue
        tap = options[int(line) - 1] if line.isdigit() and 1 <= int(line) <= len(options) else None
        text = None if tap else line.removeprefix("\\")
        if tap:
            click.echo(f"     (tapped {tap.title})")
        for reply in transport.send(text, tap):
            shown = render(reply.content, reply.wamid)
            click.echo("bot> " + "\n     ".join(shown.lines))
            # Only the newest message's options can be tapped, as on the phone a typed
            # number answers a prompt ("How many?") rather than an older menu.
            options = shown.options


@click.command("chat")
@with_appcontext
@click.option("--user", default=None, help="Phone digits or a BSUID like US.123 (default: a made-up phone).")
@click.option("--name", default="Test User", show_default=True, help="The customer's profile name.")
@click.option("--in-process", is_flag=True, help="Run the engine here on the database: no receiver or worker needed.")
@click.option("--url", default=None, help="Receiver base URL (default: PARLEY_PUBLIC_URL).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for a reply.")
def chat(user: str | None, name: str, in_process: bool, url: str | None, timeout: float) -> None:
    """Chat with the bot as a customer. Type a number to tap that option, \\2 to send "2" as text, /quit to end."""
    settings: Settings = current_app.config["PARLEY_SETTINGS"]
    try:
        who = normalize_user(user or f"1555010{uuid.uuid4().int % 10000:04d}")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--user") from None
    transport: Transport
    if in_process:
        transport = InProcess(settings, who, name)
    else:
        transport = Pipeline(settings, (url or settings.public_url).rstrip("/"), who, name, timeout)
    how = "in-process engine" if in_process else "receiver → queue → worker → sandbox"
    click.echo(f"chatting as {name} ({who}) through the {how}; /quit to end")
    converse(transport)
