"""The opt-out/opt-in route of the step machine, as a pure function (no database)."""

from __future__ import annotations

from conversation.consent_route import confirmations
from conversation.engine import handle
from conversation.state import ConsentChanged, CustomerState, Ended, EngineConfig, StepResult
from tests.conversation.test_engine import CONFIG, NOW, TEMPLATES, Actions, at, bodies, run, tap, text

NOBODY = CustomerState(None, profile_name="Ann")  # no live conversation


def run_with(config: EngineConfig, body: str) -> StepResult:
    return handle(TEMPLATES, NOBODY, text(body), NOW, config, Actions())


def test_a_stop_word_ends_the_live_conversation_with_one_confirmation():
    result = run(at("shop", "qty", product="tea"), text("STOP!"))
    assert result.conversation is None and result.outcome == "opted_out"
    assert bodies(result) == [CONFIG.opted_out_text]
    assert result.effects == [Ended("shop", "qty", "cancelled"), ConsentChanged("opt_out")]


def test_stop_without_a_conversation_is_no_fallback_and_subscribe_opts_back_in():
    stopped = run(NOBODY, text("unsubscribe"))
    assert stopped.outcome == "opted_out" and stopped.effects == [ConsentChanged("opt_out")]
    back = run(NOBODY, text("Subscribe"))
    assert back.outcome == "opted_in" and bodies(back) == [CONFIG.opted_in_text]
    assert back.effects == [ConsentChanged("opt_in")]


def test_only_the_exact_word_counts_and_only_as_text():
    answer = run(at("survey", "why"), text("stop sending me the menu"))
    assert answer.outcome == "completed" and not any(isinstance(e, ConsentChanged) for e in answer.effects)
    tapped = run(at("shop", "ok", product="tea", qty=1), tap("stop", "stop"))
    assert tapped.outcome != "opted_out"


def test_the_words_are_the_deployments():
    config = EngineConfig(opt_out_words=("halt",), opt_in_words=("resume",))
    assert run_with(config, "halt").outcome == "opted_out"
    assert run_with(config, "stop").outcome == "fallback"


def test_the_confirmations_come_from_the_texts_catalogue_naming_the_other_word():
    texts = confirmations("en", ("stop", "unsubscribe"), ("subscribe",))
    assert (
        texts["opted_out_text"] == "You won't get notifications from us any more. Send *subscribe* to get them again."
    )
    assert texts["opted_in_text"] == "You're subscribed again. Send *stop* any time to stop notifications."
    assert confirmations("pt_BR", ("pare",), ("voltar",))["opted_out_text"] != texts["opted_out_text"]
