"""``conversation/voice.py``: which texts the engine says for a customer's language.

Logic over the shipped data files and a deployment's override folder; no database.
"""

from __future__ import annotations

from pathlib import Path

from conversation.engine_settings import engine_config
from conversation.state import EngineConfig, Texts
from conversation.texts.catalogue import deployment_catalogues, shipped_catalogues
from conversation.voice import chosen_language, conversation_language, voice
from settings import load_settings
from templates.schema import Validation

SHIPPED = EngineConfig(catalogues=shipped_catalogues())


def test_without_catalogues_the_engine_speaks_its_configured_english() -> None:
    config = EngineConfig(cancel_words=("stop",), fallback_text="Say hi.", texts=Texts(cancelled="Gone."))
    spoken = voice(config, "pt_BR")
    assert (spoken.language, spoken.texts.cancelled, spoken.fallback) == ("en", "Gone.", "Say hi.")
    assert spoken.cancel_words == frozenset({"stop"})
    assert conversation_language(config, None) is None


def test_a_language_gets_its_texts_words_and_formats() -> None:
    pt = voice(SHIPPED, "pt_BR")
    assert pt.texts.cancel_title == "Cancelar" and pt.profile_name == "cliente"
    assert {"cancelar", "sair", "cancel", "exit", "quit"} <= pt.cancel_words  # the settings' words count everywhere
    assert pt.media_name("sticker") == "figurinhas" and pt.media_name("hologram") == "esse tipo de mensagem"
    assert pt.expected(Validation(type="decimal"), has_options=False) == "um número, por exemplo: 2,5"
    assert pt.expected(None, has_options=True) == "uma das opções abaixo"
    assert voice(SHIPPED, "en").expected(Validation(type="decimal"), has_options=False) == "a number, e.g. 2.5"


def test_an_unknown_language_falls_back_to_its_relative_then_the_default() -> None:
    assert voice(SHIPPED, "pt_PT").language == "pt_BR"
    assert voice(SHIPPED, "de").language == "en" and voice(SHIPPED, None).language == "en"
    assert conversation_language(SHIPPED, None) == "en" and conversation_language(SHIPPED, "pt_BR") == "pt_BR"


def test_a_language_step_answer_is_a_language_code() -> None:
    assert chosen_language({"language": "pt-br", "language_title": "Português"}) == "pt_BR"
    assert chosen_language({"language": "klingon"}) is None and chosen_language({"quantity": 2}) is None


def test_the_deployment_default_and_its_overrides_reach_the_engine(tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "pt_BR.yaml").write_text(
        'texts:\n  cancelled: "Cancelado. Mande *oi* para recomeçar."\n', encoding="utf-8"
    )
    settings = load_settings(
        {"PARLEY_ENV": "test", "PARLEY_TEMPLATES_DIR": str(tmp_path), "PARLEY_DEFAULT_LANGUAGE": "pt_BR"}
    )
    config = engine_config(settings)
    assert voice(config, None).language == "pt_BR"
    assert voice(config, None).texts.cancelled == "Cancelado. Mande *oi* para recomeçar."
    # The English default of PARLEY_FALLBACK_TEXT is no override: the Portuguese default keeps its own.
    assert voice(config, None).fallback == "Desculpe, não entendi. Mande *oi* para ver o menu."
    assert voice(config, "en").texts.cancelled == shipped_catalogues().get("en").texts["cancelled"]
    own = deployment_catalogues("en", tmp_path / "none", "Hello? Send *hi*.")
    assert (
        own.get("en").texts["fallback"] == "Hello? Send *hi*."
        and own.get("pt_BR").texts["fallback"] != "Hello? Send *hi*."
    )
