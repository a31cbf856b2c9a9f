"""``flask --app webhook templates validate`` checks the message templates beside the flows."""

from __future__ import annotations

import shutil
from pathlib import Path

from settings import load_settings
from webhook import create_app

SHIPPED = Path(__file__).resolve().parents[3] / "templates"


def validate(directory: Path) -> tuple[int, str]:
    app = create_app({"SETTINGS": load_settings({"PARLEY_ENV": "test"}), "ENQUEUE": lambda body: None})
    result = app.test_cli_runner().invoke(args=["templates", "validate", str(directory)])
    return result.exit_code, result.output


def test_the_shipped_catalogue_is_valid() -> None:
    code, output = validate(SHIPPED)
    assert code == 0, output
    assert "2 message template(s) OK: order_ready, order_reminder" in output


def test_a_broken_message_template_fails_the_directory(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "flows")
    catalogue = tmp_path / "flows" / "message_templates.yaml"
    catalogue.write_text(catalogue.read_text().replace("category: UTILITY", "category: GOSSIP", 1))
    code, output = validate(tmp_path / "flows")
    assert code == 1
    assert "order_ready: category:" in output and "error(s)" in output


def test_a_reminder_naming_an_undeclared_template_or_an_unknown_placeholder_fails(tmp_path: Path) -> None:
    flow = SHIPPED / "new_order.yaml"
    text = flow.read_text()
    assert "name: order_reminder" in text and "Still there, {profile_name}?" in text
    # The Portuguese reminder carries the same placeholder, so it changes with the English one:
    # what is checked is the unknown placeholder, not a translation that no longer matches.
    for n, (changes, expected) in enumerate(
        [
            (
                [("name: order_reminder", "name: order_nudge")],
                "reminder_template: no message template named 'order_nudge'",
            ),
            (
                [
                    ("Still there, {profile_name}?", "Still there, {nickname}?"),
                    ("aí, {profile_name}?", "aí, {nickname}?"),
                ],
                "step confirmation: reminder: ",
            ),
        ]
    ):
        changed = text
        for old, new in changes:
            assert old in changed
            changed = changed.replace(old, new)
        shutil.copytree(SHIPPED, tmp_path / f"flows{n}")
        (tmp_path / f"flows{n}" / "new_order.yaml").write_text(changed)
        code, output = validate(tmp_path / f"flows{n}")
        assert code == 1 and expected in output, output
