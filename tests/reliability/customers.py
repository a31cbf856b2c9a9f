"""Scripted customers: what each one sends through the shipped flows, and the replies owed.

A customer's script is a list of turns; a turn is one or more messages sent together
(a burst). Each message carries the replies it must produce, as regular expressions
over the reply's text, so the audit can tell a lost, a repeated or a wrong reply apart.
Replies never depend on how a burst is interleaved: burst messages are keywords, which
restart their flow from any state.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.webhooks import contact, message

_counter = itertools.count(1)

MENU = "Hi {name}! How can we help you today?"
ORDER_LIST = "What would you like to order?"
SUPPORT_LIST = "How can we help?"
ACCOUNT_MENU = "Your account. What would you like to do?"
ENTRY_BY_KEYWORD = {
    "hi": MENU,
    "menu": MENU,
    "start": MENU,
    "hello": MENU,
    "order": ORDER_LIST,
    "buy": ORDER_LIST,
    "purchase": ORDER_LIST,
    "support": SUPPORT_LIST,
    "help": SUPPORT_LIST,
    "account": ACCOUNT_MENU,
    "profile": ACCOUNT_MENU,
}
BURST_WORDS = ("hi", "order", "support", "account", "help", "menu", "buy", "profile", "start", "purchase")
# Customer text that looks like a placeholder or a format string: must come back literally.
TRICKY_NAME = "{order_id} {0.__class__} %s %(x)s {{x}}"


@dataclass
class Msg:
    """One inbound message and the reply texts (regexes) it must produce, in order."""

    text: str | None = None
    tap: tuple[str, str] | None = None
    replies: list[str] = field(default_factory=list)
    wamid: str = field(default_factory=lambda: f"wamid.CHAOS{uuid.uuid4().hex}")

    def item(self, customer: Customer, ts: int) -> dict[str, Any]:
        return message(customer.phone or "", text=self.text, tap=self.tap, wamid=self.wamid, ts=ts)


@dataclass
class Turn:
    msgs: list[Msg]
    # together: one POST (Meta batching); apart: one POST per message, all at once.
    mode: Literal["together", "apart"] = "together"
    after: threading.Event | None = None  # sent only once this is set (a scenario's cue)


@dataclass
class Customer:
    name: str
    phone: str | None
    bsuid: str | None
    turns: list[Turn]
    ends: bool  # the script ends its conversation (no conversation row may remain)
    orders: int = 0  # orders the script places
    copies: int = 1  # each POST delivered this many times (Meta's redeliveries)
    copies_at_once: bool = False  # ... concurrently rather than one after another

    @property
    def key(self) -> str:
        return self.bsuid or self.phone or ""

    @property
    def recipient(self) -> str:
        """How the stub sees this customer in a send: ``to`` (+phone) or ``recipient`` (BSUID)."""
        return f"+{self.phone}" if self.phone else (self.bsuid or "")

    def contact(self) -> dict[str, Any]:
        return contact(self.phone or "", bsuid=self.bsuid, name=self.name)

    def payload(self, msgs: list[Msg]) -> dict[str, Any]:
        from tests.support.webhooks import webhook

        base = int(time.time())
        return webhook([m.item(self, base + i) for i, m in enumerate(msgs)], [self.contact()])

    def messages(self) -> list[Msg]:
        return [m for t in self.turns for m in t.msgs]


def _identity(username: bool) -> tuple[str, str | None, str | None]:
    n = next(_counter)
    name = f"Cust{n:04d}x{uuid.uuid4().hex[:4]}"
    if username:
        return name, None, f"US.{uuid.uuid4().int % 10**19:019d}"
    return name, "1555" + str(uuid.uuid4().int)[:8], None


def lit(text: str) -> str:
    return re.escape(text)


def coffee(username: bool = False) -> Customer:
    """hi → New Order → Coffee → 2 → Confirm: five replies, one order, conversation ended."""
    name, phone, bsuid = _identity(username)
    turns = [
        Turn([Msg("hi", replies=[lit(MENU.format(name=name))])]),
        Turn([Msg(tap=("new_order", "New Order"), replies=[lit(ORDER_LIST)])]),
        Turn([Msg(tap=("coffee", "Coffee"), replies=[lit("How many Coffee? (Enter a number)")])]),
        Turn([Msg("2", replies=[lit("You're ordering 2 x Coffee. Shall I place the order?")])]),
        Turn(
            [
                Msg(
                    tap=("confirm", "Confirm"),
                    replies=[r"Order placed! Your order number is ORD-\d{6}\. We'll let you know when it's ready\."],
                )
            ]
        ),
    ]
    return Customer(name, phone, bsuid, turns, ends=True, orders=1)


def support_contact(username: bool = False) -> Customer:
    """help → Contact us → a message for the team: the customer is handed to a person, so the
    bot says nothing to that message (it waits in the inbox), whatever the faults."""
    name, phone, bsuid = _identity(username)
    turns = [
        Turn([Msg("help", replies=[lit(SUPPORT_LIST)])]),
        Turn([Msg(tap=("contact", "Contact us"), replies=[lit(HANDOFF_PROMPT)])]),
        Turn([Msg(f"Hello team, {name} here: %s {{0}}", replies=[])]),
    ]
    return Customer(name, phone, bsuid, turns, ends=True)


def account_profile(username: bool = False) -> Customer:
    """account → Profile → a name that looks like placeholders → email: shown literally."""
    name, phone, bsuid = _identity(username)
    email = f"{name.lower()}@example.org"
    typed = f"{TRICKY_NAME} {name}"
    turns = [
        Turn([Msg("account", replies=[lit(ACCOUNT_MENU)])]),
        Turn([Msg(tap=("profile", "Profile"), replies=[lit("What name should we use for you?")])]),
        Turn([Msg(typed, replies=[lit("And your email address?")])]),
        Turn([Msg(email, replies=[lit(f"Saved: {typed}, {email}. Thank you!")])]),
    ]
    return Customer(name, phone, bsuid, turns, ends=True)


def burst(mode: Literal["together", "apart"], size: int = 10, username: bool = False, bursts: int = 1) -> Customer:
    """``bursts`` times ``size`` keywords at once (faster than replies go out); each is answered
    by its flow's entry message, whatever order a burst is handled in."""
    name, phone, bsuid = _identity(username)
    words = [BURST_WORDS[i % len(BURST_WORDS)] for i in range(size)]
    turns = [Turn([Msg(w, replies=[lit(ENTRY_BY_KEYWORD[w].format(name=name))]) for w in words], mode=mode)]
    turns += [Turn([Msg(m.text, replies=m.replies) for m in turns[0].msgs], mode=mode) for _ in range(bursts - 1)]
    return Customer(name, phone, bsuid, turns, ends=False)


def mixed(n: int, username_every: int = 4) -> list[Customer]:
    """``n`` customers over the three full flows; every ``username_every``-th has no phone."""
    makers = (coffee, support_contact, account_profile)
    return [makers[i % len(makers)](username=(i % username_every == username_every - 1)) for i in range(n)]


HANDOFF_PROMPT = "Okay, a person from our team will answer you here. Write your message whenever you like."
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."


def poisoned_coffee(marker: str, username: bool = False) -> Customer:
    """A coffee order with a message in the middle that fails every time it is processed.

    That message is owed the apology; the order then goes on as if it had not been sent.
    """
    customer = coffee(username)
    customer.turns.insert(2, Turn([Msg(f"{marker} please", replies=[lit(APOLOGY)])]))
    return customer


def greeter(writes_again: threading.Event | None = None) -> Customer:
    """Says hi and goes quiet; with ``writes_again`` says hi once more when it is set."""
    name, phone, bsuid = _identity(False)
    turns = [Turn([Msg("hi", replies=[lit(MENU.format(name=name))])])]
    if writes_again is not None:
        turns.append(Turn([Msg("hi", replies=[lit(MENU.format(name=name))])], after=writes_again))
    return Customer(name, phone, bsuid, turns, ends=writes_again is None)
