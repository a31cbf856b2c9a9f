"""parley's own texts per language (``conversation/texts/``): shipped, overridden, refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from conversation.texts import TextsError, load_catalogues
from conversation.texts.catalogue import SHIPPED_DIR
from conversation.texts.checks import flatten

REFERENCE = yaml.safe_load((SHIPPED_DIR / "en.yaml").read_text(encoding="utf-8"))


def write(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def refused(overrides: Path, **kwargs: str) -> list[str]:
    with pytest.raises(TextsError) as caught:
        load_catalogues(overrides=overrides, **kwargs)
    return caught.value.problems


def test_the_shipped_languages_load_complete_and_differ() -> None:
    catalogues = load_catalogues()
    assert catalogues.languages == ("en", "pt_BR")
    en, pt = catalogues.get("en"), catalogues.get("pt_BR")
    assert set(en.texts) == set(pt.texts) == set(flatten(REFERENCE["texts"]))
    assert en.text("cancel_title") == "Cancel"
    assert pt.text("cancel_title") == "Cancelar"
    # Nothing in Portuguese was left in English by mistake (button titles like "OK" aside).
    same = {k for k in en.texts if en.texts[k] == pt.texts[k]}
    assert same == set()
    assert pt.words["cancel"] == ("cancelar", "sair")
    assert "sim" in pt.words["yes"] and "sim" not in en.words["yes"]


def test_validation_texts_format_numbers_and_plurals_per_language() -> None:
    catalogues = load_catalogues()
    pt, en = catalogues.get("pt_BR"), catalogues.get("en")
    assert pt.text("invalid.at_least", min=Decimal("3.50")) == "Envie um número de pelo menos 3,50."
    assert en.text("invalid.at_least", min=Decimal("3.50")) == "Please send a number of at least 3.50."
    assert pt.text("invalid.min_length", count=1) == "Envie pelo menos 1 caractere."
    assert pt.text("invalid.min_length", count=5) == "Envie pelo menos 5 caracteres."
    assert pt.text("invalid.max_length", count=1_000_000) == "Envie no máximo 1.000.000 de caracteres."
    assert en.text("invalid.min_length", count=1) == "Please send at least 1 character."
    assert en.text("invalid.min_length", count=1200) == "Please send at least 1,200 characters."
    assert pt.text("expected.decimal", example=2.5) == "um número, por exemplo: 2,5"
    assert pt.text("expected.date", example=date(2026, 12, 24)) == "uma data, por exemplo: 24/12/2026"
    assert en.text("expected.date", example=date(2026, 12, 24)) == "a date, e.g. 2026-12-24 or 24/12/2026"
    assert en.text("expected.number", example=2) == "a whole number greater than zero, e.g. 2"
    assert pt.text("media", what=pt.text("media_names.image"), expected=pt.text("expected.yes_no")) == (
        "Desculpe, não consigo abrir imagens por aqui. Envie sim ou não."
    )


def test_language_lookup_falls_back_sensibly() -> None:
    catalogues = load_catalogues()
    assert catalogues.get("pt-BR").language == "pt_BR"
    assert catalogues.get("pt_PT").language == "pt_BR"  # nearer than the default
    assert catalogues.get("pt").language == "pt_BR"
    assert catalogues.get("fr").language == "en"
    assert catalogues.get(None).language == "en"
    assert catalogues.get("not a language").language == "en"
    assert load_catalogues(default_language="pt_BR").get("fr").language == "pt_BR"


def test_an_override_changes_only_the_keys_it_gives(tmp_path: Path) -> None:
    write(
        tmp_path,
        "pt_BR.yaml",
        {"texts": {"fallback": "Oi! Mande *menu* para começar.", "media_names": {"other": "isso"}}},
    )
    catalogues = load_catalogues(overrides=tmp_path)
    pt = catalogues.get("pt_BR")
    assert pt.text("fallback") == "Oi! Mande *menu* para começar."
    assert pt.text("media_names.other") == "isso"
    assert pt.text("media_names.image") == "imagens"
    assert pt.text("cancel_title") == "Cancelar"
    assert catalogues.get("en").text("fallback") == "Sorry, I didn't get that. Send *hi* to see the menu."


def test_the_older_fallback_setting_is_the_default_languages_fallback() -> None:
    catalogues = load_catalogues(default_language="pt_BR", fallback_text="Mande oi.")
    assert catalogues.get("pt_BR").text("fallback") == "Mande oi."
    assert catalogues.get("en").text("fallback") != "Mande oi."


def test_a_new_language_needs_every_text(tmp_path: Path) -> None:
    write(
        tmp_path,
        "es.yaml",
        {"formats": {"locale": "es", "date_input": ["%d/%m/%Y"]}, "texts": {"cancel_title": "Cancelar"}},
    )
    problems = refused(tmp_path)
    file = str(tmp_path / "es.yaml")
    assert f"{file}: words: must hold cancel, yes, no" in problems
    assert f"{file}: texts.choose: missing" in problems
    assert f"{file}: texts.invalid.min_length: missing" in problems
    assert not any("cancel_title" in p for p in problems)


def test_a_complete_new_language_loads(tmp_path: Path) -> None:
    spanish = yaml.safe_load((SHIPPED_DIR / "pt_BR.yaml").read_text(encoding="utf-8"))
    spanish["formats"]["locale"] = "es"
    write(tmp_path, "es.yaml", spanish)
    catalogues = load_catalogues(default_language="es", overrides=tmp_path)
    assert catalogues.languages == ("en", "es", "pt_BR")
    assert catalogues.get("fr").language == "es"


def test_each_defect_of_an_override_is_one_precise_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "pt_BR.yaml",
        {
            "texts": {
                "media": "Não consigo ler {what}.",  # {expected} lost
                "stale": "Opção antiga de {menu}.",  # a placeholder nobody fills
                "retry_title": "Tentar novamente agora",  # 22 > 20
                "chose": "Escolha.",  # a typo of choose
                "invalid": {"min_length": {"one": "Pelo menos 1 caractere.", "other": "Pelo menos {count}."}},
                "cancelled": "Cancelado {o pedido}",
            },
            "words": {"cancel": []},
            "formats": {"date_input": ["%d/%m"]},
        },
    )
    file = str(tmp_path / "pt_BR.yaml")
    assert sorted(refused(tmp_path)) == sorted(
        f"{file}: {line}"
        for line in [
            "formats.date_input[0]: '%d/%m' does not read back a whole date (day, month, year)",
            "words.cancel: must list at least one word",
            "texts.cancelled: invalid placeholder {o pedido}: only {name} is allowed; write {{ and }} for literal braces",
            "texts.chose: unknown text (did you mean choose?)",
            "texts.invalid.min_length: form 'many' missing (this language needs it)",
            "texts.media: placeholder {expected} of the English text is missing",
            "texts.retry_title: at most 20 characters (WhatsApp limit for a reply button title), got 22",
            "texts.stale: placeholder {menu} is not in the English text",
        ]
    )


def test_bad_file_names_and_default_language_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "pt-br.yaml", {"texts": {}})
    write(tmp_path, "klingon.yaml", {"texts": {}})
    problems = refused(tmp_path, default_language="de")
    assert f"{tmp_path / 'pt-br.yaml'}: file name: spell the language pt_BR" in problems
    assert any(p.startswith(f"{tmp_path / 'klingon.yaml'}: file name: ") for p in problems)
    assert any(p.startswith("PARLEY_DEFAULT_LANGUAGE: no texts for de") for p in problems)
    with pytest.raises(TextsError, match="PARLEY_DEFAULT_LANGUAGE: 'x y' is not a language code"):
        load_catalogues(default_language="x y")


def test_an_unreadable_override_is_named(tmp_path: Path) -> None:
    (tmp_path / "pt_BR.yaml").write_text("texts: [unclosed", encoding="utf-8")
    problems = refused(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'pt_BR.yaml'}: cannot read: ")
