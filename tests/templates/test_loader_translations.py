"""The loader refuses a flow whose translation is incomplete: one precise line per defect.

Each test copies the shipped flows, breaks one thing in the Portuguese of ``new_order``
and loads the folder as ``templates validate`` and ``templates load`` do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from templates.loader import LoadResult, load_directory

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "templates").glob("*.yaml") if p.stem != "message_templates")


def broken(tmp_path: Path, old: str, new: str) -> tuple[LoadResult, str]:
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "templates", folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = folder / "new_order.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load_directory(folder, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS), str(path)


def test_the_shipped_flows_load_with_their_portuguese() -> None:
    result = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert result.errors == []
    assert sorted(result.templates) == SHIPPED
    assert all(t.language == "en" and set(t.translations or {}) == {"pt_BR"} for t in result.templates.values())


def test_a_missing_translation_is_one_line_per_missing_text(tmp_path: Path) -> None:
    result, file = broken(tmp_path, '        tea: {title: "Chá", description: "Preto, verde ou de ervas, 2,80"}\n', "")
    assert [str(e) for e in result.errors] == [
        f"{file}: translations.pt_BR.message.options.tea.description: missing: the en text is 'Black, green or herbal, 2.80'",
        f"{file}: translations.pt_BR.message.options.tea.title: missing: the en text is 'Tea'",
    ]
    assert "new_order" not in result.templates  # a half-translated flow does not load
    assert sorted(result.templates) == [n for n in SHIPPED if n != "new_order"]


def test_a_missing_placeholder_names_the_step_and_the_placeholder(tmp_path: Path) -> None:
    result, file = broken(tmp_path, "O número do seu pedido é {order_id}.", "Anote o número do seu pedido.")
    assert [str(e) for e in result.errors] == [
        f"{file}: step complete: translations.pt_BR.prompt: placeholder {{order_id}} of the en text is missing"
    ]
    assert "new_order" not in result.templates


def test_a_portuguese_title_over_the_whatsapp_limit_is_refused(tmp_path: Path) -> None:
    result, file = broken(tmp_path, 'coffee: {title: "Café",', 'coffee: {title: "Café coado na hora, com leite",')
    assert [str(e) for e in result.errors] == [
        f"{file}: translations.pt_BR.message.options.coffee.title: at most 24 characters"
        " (WhatsApp limit for a list row title), got 29"
    ]


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("trigger_keywords: [pedido, pedir, comprar]", "trigger_keywords: [pedido, oi]", "'oi' is also a keyword of"),
        ("language: en\n", "language: english\n", "language: 'english' is not a language code"),
        ("  pt_BR:\n", "  pt-br:\n", "write the language as pt_BR"),
    ],
)
def test_keywords_and_language_codes_are_checked(tmp_path: Path, old: str, new: str, line: str) -> None:
    result, _ = broken(tmp_path, old, new)
    assert result.errors and all("new_order" in str(e) or "main_menu" in str(e) for e in result.errors)
    assert any(line in str(e) for e in result.errors), [str(e) for e in result.errors]
    assert "new_order" not in result.templates
