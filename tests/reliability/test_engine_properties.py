"""The step engine on the shipped flows, under random customers: never raises, never strands.

A customer is any sequence of texts, taps (valid, stale, forged), media, reactions,
events (deletions, notices, identity changes, unknown kinds), edits of their latest
message, catalog orders, Flow replies and pauses (up to past their conversation's
expiry), with any profile name, with actions that work or fail. After every message: no
exception, a reply unless the message was a reaction, an event or a repeated fallback
(an event never gets one), a live conversation only on an existing step that can
be shown, no reply Meta would refuse. From wherever they end up, "hi" brings the menu
and "cancel" ends the conversation. Customer text that looks like a placeholder or a
format string comes back literally.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import Cart, CartItem, IdentityChange
from conversation.state import CANCEL_ID, RESTART_ID, RETRY_ID, TemplateSet
from templates.loader import load_directory
from templates.normalize import normalize
from tests.reliability.audit import body_text
from tests.reliability.engine_walk import CONFIG, FakeActions, Walker, option_ids, option_titles

ROOT = Path(__file__).resolve().parents[2]
LOADED = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
TEMPLATES = TemplateSet(LOADED.templates)
KEYWORDS = sorted({kw for t in LOADED.templates.values() for kw in t.trigger_keywords})
TRICKY = [
    "{order_id}",
    "{0.__class__}",
    "{0.__class__.__mro__}",
    "%s",
    "%(name)s",
    "%d%%",
    "{{x}}",
    "{profile_name}",
    "{name}",
    "{",
    "}",
    "{}",
    "{0}",
    "${HOME}",
    "{email}",
    "\\u0000",
]
ANSWERS = ["1", "2", "3", "4", "0", "51", "2.5", "-1", "yes", "no", "a@b.co", "ORD-000123", "123", "2026-01-01"]
WORDS = KEYWORDS + list(CONFIG.cancel_words) + option_titles(TEMPLATES) + ANSWERS + TRICKY

texts = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: f"  {w.upper()}!! "),
    st.text(max_size=120),
)
choices = st.one_of(st.sampled_from([*option_ids(TEMPLATES), RETRY_ID, RESTART_ID, CANCEL_ID]), st.text(max_size=40))
events = st.one_of(
    st.tuples(st.just("text"), texts),
    st.tuples(st.just("text"), texts),
    st.tuples(st.just("choice"), choices),
    st.tuples(st.sampled_from(["media", "location", "contacts", "reaction", "unsupported"]), st.none()),
    st.tuples(st.sampled_from(["revoke", "call_permission", "notice", "welcome", "identity", "unknown"]), st.none()),
    st.tuples(st.just("edit"), texts),
    st.tuples(st.sampled_from(["order", "flow_reply"]), st.none()),
    st.tuples(st.just("wait"), st.sampled_from([5, 3600, 2 * 3600, 25 * 3600])),
)
CART = Cart("cat", (CartItem("coffee", 2, "3.50", "EUR"),), None)
EXTRA = {
    "order": {"cart": CART},
    "flow_reply": {"answers": {"flow_token": "t", "party_size": "2"}},
    "identity": {"identity": IdentityChange("15550001111", None, "15550002222", None)},
}
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def play(walker: Walker, sequence: list[tuple[str, object]]) -> None:
    for kind, arg in sequence:
        if kind == "wait":
            walker.wait(float(arg))  # type: ignore[arg-type]
        elif kind == "text":
            walker.send("text", text=str(arg))
        elif kind == "choice":
            walker.send("choice", text=None, choice_id=str(arg))
        elif kind == "edit":  # of the message before it: the latest answer, when it was one
            walker.send("edit", text=str(arg), target_wamid=f"wamid.walk{walker.steps}")
        elif kind in EXTRA:
            walker.send(kind, **EXTRA[kind])
        else:
            walker.send(kind, mtype={"media": "image", "unsupported": "poll_update"}.get(kind, kind))


@PROPERTY
@given(
    sequence=st.lists(events, max_size=40),
    profile=st.none() | st.text(max_size=256),
    failing_actions=st.booleans(),
)
def test_any_customer_always_has_a_reply_path(
    sequence: list[tuple[str, object]], profile: str | None, failing_actions: bool
) -> None:
    walker = Walker(TEMPLATES, profile_name=profile, actions=FakeActions(fail=failing_actions))
    play(walker, sequence)
    walker.wait(1)
    menu = walker.send("text", text="hi")
    assert menu.conversation is not None and menu.conversation.template == "main_menu"
    assert body_text(menu.messages[-1]) == f"Hi {profile or 'there'}! How can we help you today?"
    cancelled = walker.send("text", text="cancel")
    assert cancelled.outcome == "cancelled" and cancelled.conversation is None and cancelled.messages


@PROPERTY
@given(sequence=st.lists(events, min_size=1, max_size=25))
def test_every_tap_of_every_shown_option_is_answered(sequence: list[tuple[str, object]]) -> None:
    """Wherever a random customer ends up, each option on screen leads somewhere with a reply."""
    walker = Walker(TEMPLATES)
    play(walker, sequence)
    conv = walker.state.conversation
    if conv is None:
        return
    template = TEMPLATES.get(conv.template)
    assert template is not None
    for option in template.step_options(conv.step):
        fork = Walker(TEMPLATES, state=walker.state, now=walker.now, steps=walker.steps)
        result = fork.send("choice", text=option.title, choice_id=option.id)
        assert result.outcome not in {"stale", "invalid", "ignored"}, (conv, option, result.outcome)


def _plain(name: str) -> bool:
    said = normalize(name)
    return TEMPLATES.keywords.exact(name) is None and said not in {normalize(w) for w in CONFIG.cancel_words}


@settings(max_examples=200, deadline=None)
@given(name=st.one_of(st.sampled_from(TRICKY), st.text(min_size=1, max_size=60)).map(str.strip))
@example(name="{order_id} {0.__class__} %s %(x)s {{x}}")
def test_customer_text_that_looks_like_a_placeholder_is_shown_literally(name: str) -> None:
    if not name or len(name) > 60 or not _plain(name):
        return
    walker = Walker(TEMPLATES, profile_name=name)
    greeting = walker.send("text", text="hi")
    assert body_text(greeting.messages[0]) == f"Hi {name}! How can we help you today?"
    walker.send("text", text="account")
    walker.send("choice", text="Profile", choice_id="profile")
    asked = walker.send("text", text=name)
    assert body_text(asked.messages[-1]) == "And your email address?", asked
    saved = walker.send("text", text="ann@example.com")
    assert body_text(saved.messages[-1]) == f"Saved: {name}, ann@example.com. Thank you!"
