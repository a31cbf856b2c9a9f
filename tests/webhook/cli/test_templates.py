"""``templates validate``: an incomplete translation is refused with one precise line per defect."""

from __future__ import annotations

import shutil
from pathlib import Path

from settings import load_settings
from webhook import create_app

ROOT = Path(__file__).resolve().parents[3]


def validate(folder: Path) -> tuple[int, str, str]:
    app = create_app({"SETTINGS": load_settings({"PARLEY_ENV": "test"}), "ENQUEUE": lambda body: None})
    result = app.test_cli_runner().invoke(args=["templates", "validate", str(folder)])
    return result.exit_code, result.stdout, result.stderr


def test_the_shipped_flows_validate() -> None:
    code, out, _ = validate(ROOT / "templates")
    assert code == 0 and out.strip() == "5 template(s) OK: account, language, main_menu, new_order, support"


def test_an_incomplete_translation_is_refused_line_by_line(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "templates", folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = folder / "support.yaml"
    text = path.read_text(encoding="utf-8")
    # Two defects: a step's Portuguese prompt gone, another's placeholder lost.
    gone = '        prompt: "Qual é o número do seu pedido? (por exemplo, ORD-000123)"\n'
    lost = ('prompt: "Pedido {order_number}: {order_status}"', 'prompt: "Pedido {order_number}: {situacao}"')
    assert text.count(gone) == 1 and text.count(lost[0]) == 1
    path.write_text(text.replace(gone, "").replace(*lost), encoding="utf-8")
    code, out, err = validate(folder)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}: step order_number: translations.pt_BR.prompt: missing: the en text is"
        " 'What is your order number? (e.g. ORD-000123)'",
        f"{path}: step order_status: translations.pt_BR.prompt: placeholder {{order_status}} of the en text is missing",
        f"{path}: step order_status: translations.pt_BR.prompt: placeholder {{situacao}} is not in the en text",
        f"3 error(s); no template in {folder} is valid until they are fixed.",
    ]


def test_a_broken_text_override_beside_the_flows_is_refused_too(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "templates", folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (folder / "texts").mkdir()
    override = folder / "texts" / "pt_BR.yaml"
    override.write_text('texts:\n  cancelld: "Cancelado."\n  media: "Não consigo abrir {what}."\n', encoding="utf-8")
    code, out, err = validate(folder)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 3 and lines[-1] == f"2 error(s); no template in {folder} is valid until they are fixed."
    assert all(line.startswith(f"{override}: texts.") for line in lines[:2])
    assert "cancelld" in lines[0] and "{expected}" in lines[1]
