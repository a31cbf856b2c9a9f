"""docs/FLOWS.md stays true: every YAML example in it goes through the real loader.

Each ```yaml block is preceded by a marker comment:
``<!-- example: complete -->`` (loads with no error, beside the shipped flows, which it
may replace), ``<!-- example: complete, same as templates/X.yaml -->`` (also equal to that
file) or ``<!-- example: wrong, error: "..." -->`` (fails with an error containing that
text). The loader gets the registered actions and globals, as ``templates load`` does.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from templates.loader import load_directory

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "FLOWS.md"
BLOCK = re.compile(r"(?:<!-- (example: [^\n]*?) -->\n)?```yaml\n(.*?)```", re.S)
MARKER = re.compile(r'^example: (complete|wrong)(?:, same as (\S+))?(?:, error: "(.*)")?$')


@dataclass(frozen=True)
class Example:
    line: int
    kind: str  # complete | wrong
    same_as: str | None
    error: str | None
    text: str

    @property
    def name(self) -> str:
        return yaml.safe_load(self.text)["template_name"]


def examples() -> list[Example]:
    doc = DOC.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(doc):
        line = doc.count("\n", 0, match.start()) + 1
        marker = MARKER.match(match.group(1) or "")
        assert marker, f"FLOWS.md line {line}: a yaml block without an example marker"
        kind, same_as, error = marker.groups()
        assert (kind == "wrong") == (error is not None), f"FLOWS.md line {line}: a wrong example names its error"
        found.append(Example(line, kind, same_as, error, match.group(2)))
    return found


def load_beside_shipped(example: Example, tmp_path: Path) -> tuple[list[str], set[str]]:
    """Errors and loaded names of the shipped flows plus ``example`` (replacing a same-name file)."""
    for shipped in (ROOT / "templates").glob("*.yaml"):
        shutil.copy(shipped, tmp_path / shipped.name)
    (tmp_path / f"{example.name}.yaml").write_text(example.text, encoding="utf-8")
    result = load_directory(tmp_path, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    return [str(error).replace(str(tmp_path) + "/", "") for error in result.errors], set(result.templates)


EXAMPLES = examples()


def test_the_doc_has_complete_and_wrong_examples() -> None:
    kinds = [e.kind for e in EXAMPLES]
    assert kinds.count("complete") >= 3 and kinds.count("wrong") >= 3
    assert [e.same_as for e in EXAMPLES if e.same_as] == ["templates/new_order.yaml"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}-{e.kind}")
def test_example_loads_as_the_doc_says(example: Example, tmp_path: Path) -> None:
    errors, loaded = load_beside_shipped(example, tmp_path)
    if example.kind == "complete":
        assert errors == []
        assert example.name in loaded
    else:
        assert any(e.startswith(f"{example.name}.yaml: ") and example.error in e for e in errors), errors
        assert example.name not in loaded


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.same_as], ids=lambda e: e.same_as)
def test_worked_example_is_the_shipped_flow(example: Example) -> None:
    assert yaml.safe_load(example.text) == yaml.safe_load((ROOT / example.same_as).read_text(encoding="utf-8"))


def test_every_template_key_and_validation_is_documented() -> None:
    from templates.schema import HttpAction, Step, TemplateDef, Validation
    from templates.schema import ValidationKind as Kinds

    doc = DOC.read_text(encoding="utf-8")
    keys = [*TemplateDef.model_fields, *Step.model_fields, *Validation.model_fields, *HttpAction.model_fields]
    assert [k for k in keys if f"`{k}`" not in doc] == []
    assert [k for k in Kinds.__args__ if f"`{k}`" not in doc] == []
    assert [a for a in ACTION_PROVIDES if f"`{a}`" not in doc] == []
    assert [g for g in GLOBAL_PLACEHOLDERS if f"{{{g}}}" not in doc] == []


def test_the_inbound_kinds_table_is_the_kinds_table() -> None:
    from conversation.kinds import KINDS

    doc = DOC.read_text(encoding="utf-8")
    start = doc.index("<!-- kinds:")
    rows = re.findall(
        r"^\| `([^`]+)` \| (\w+) \| (.+) \|$", doc[start : doc.index("\n\n", doc.index("| ---", start))], re.M
    )
    assert rows == [(k.name, k.role.value, k.what) for k in KINDS]
