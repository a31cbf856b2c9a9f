"""Keyword routing: normalized, on word boundaries, deterministic tie-break."""

from __future__ import annotations

from conversation.keywords import KeywordIndex, Match


def index() -> KeywordIndex:
    return KeywordIndex(
        [
            ("hi", "main_menu", 0),
            ("order", "new_order", 0),
            ("new order", "express", 0),
            ("help", "support", 0),
            ("help", "aaa_help", 5),
            ("café", "cafe_menu", 0),
        ]
    )


def test_keyword_matches_on_word_boundaries_only():
    assert index().search("Hi there!") == "main_menu"
    assert index().search("this is history") is None
    assert index().search("hiking") is None


def test_case_accents_punctuation_and_emoji_are_ignored():
    assert index().search("HI!!! 😀") == "main_menu"
    assert index().search("un CAFE, por favor") == "cafe_menu"
    assert index().search("¿Café?") == "cafe_menu"


def test_longest_keyword_wins_then_priority_then_name():
    assert index().search("I want a new order please") == "express"
    assert index().search("help") == "aaa_help"  # same length, higher priority
    tie = KeywordIndex([("go", "b_flow", 0), ("go", "a_flow", 0)])
    assert tie.search("go") == "a_flow"


def test_multi_word_keyword_needs_the_whole_phrase():
    only_phrase = KeywordIndex([("new order", "express", 0)])
    assert only_phrase.search("order something new") is None
    assert only_phrase.search("NEW   order") == "express"


def test_exact_match_requires_the_whole_message():
    assert index().exact("Order") == "new_order"
    assert index().exact("I want to order") is None


def test_lookup_cost_does_not_depend_on_template_count():
    big = KeywordIndex((f"kw{i}", f"t{i}", 0) for i in range(20000))
    # only the message's own tokens are looked up: a dict probe per token
    assert big.search("please kw19999 now") == "t19999"
    assert len(big.keywords_starting_with("please")) == 0
    assert big.keywords_starting_with("kw19999") == ["kw19999"]


def test_a_match_says_which_language_the_keyword_is_in() -> None:
    index = KeywordIndex([("hi", "main_menu", 0, "en"), ("olá", "main_menu", 0, "pt_BR"), ("help", "support", 0)])
    assert index.exact_match("Ola!") == Match("main_menu", "pt_BR")
    assert index.search_match("hi there") == Match("main_menu", "en")
    assert index.search_match("I need help") == Match("support", None)  # no language: the default's
    assert index.exact("olá") == "main_menu" and index.exact_match("nothing") is None
