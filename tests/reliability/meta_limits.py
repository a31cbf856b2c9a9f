"""What Meta would reject, checked on the message content parley actually sends.

Written from Meta's documented message limits, independently of
``templates/schema.py``, so a schema or linter gap shows up here rather than at Meta.
"""

from __future__ import annotations

from typing import Any

TEXT_BODY = 4096
INTERACTIVE_BODY = 1024  # the safe limit: legacy reference, every interactive type
HEADER_TEXT = 60
FOOTER = 60
BUTTONS = 3
BUTTON_TITLE = 20
BUTTON_ID = 256
LIST_BUTTON = 20
SECTIONS = 10
ROWS = 10
SECTION_TITLE = 24
ROW_TITLE = 24
ROW_ID = 200
ROW_DESCRIPTION = 72


def _length(problems: list[str], what: str, value: Any, most: int, least: int = 1) -> None:
    if not isinstance(value, str):
        problems.append(f"{what} is not text: {value!r:.40}")
    elif not least <= len(value) <= most:
        problems.append(f"{what} has {len(value)} characters (allowed {least}..{most})")


def violations(content: Any) -> list[str]:
    """Every reason Meta would refuse ``content`` (a message's type + object); [] if none."""
    problems: list[str] = []
    if not isinstance(content, dict):
        return ["content is not an object"]
    kind = content.get("type")
    if kind == "text":
        _length(problems, "text body", (content.get("text") or {}).get("body"), TEXT_BODY)
        return problems
    if kind != "interactive" or not isinstance(content.get("interactive"), dict):
        return [f"unexpected message type {kind!r}"]
    inner = content["interactive"]
    _length(problems, "interactive body", (inner.get("body") or {}).get("text"), INTERACTIVE_BODY)
    header = inner.get("header")
    if header is not None:
        if header.get("type") != "text":
            problems.append("only text headers are produced by flows")
        _length(problems, "header", header.get("text"), HEADER_TEXT)
    footer = inner.get("footer")
    if footer is not None:
        _length(problems, "footer", footer.get("text"), FOOTER)
    action = inner.get("action") or {}
    if inner.get("type") == "button":
        _buttons(problems, action.get("buttons"))
    elif inner.get("type") == "list":
        _list(problems, action)
    else:
        problems.append(f"unknown interactive type {inner.get('type')!r}")
    return problems


def _buttons(problems: list[str], buttons: Any) -> None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= BUTTONS:
        problems.append(f"reply buttons: need 1..{BUTTONS}, got {buttons!r:.60}")
        return
    titles, ids = [], []
    for b in buttons:
        reply = b.get("reply") if isinstance(b, dict) else None
        if not isinstance(reply, dict) or b.get("type") != "reply":
            problems.append("a button is not {type: reply, reply: {...}}")
            continue
        _length(problems, "button title", reply.get("title"), BUTTON_TITLE)
        _length(problems, "button id", reply.get("id"), BUTTON_ID)
        titles.append(reply.get("title"))
        ids.append(reply.get("id"))
    if len(set(map(str, titles))) != len(titles):
        problems.append("button titles are not unique")
    if len(set(map(str, ids))) != len(ids):
        problems.append("button ids are not unique")


def _list(problems: list[str], action: dict[str, Any]) -> None:
    _length(problems, "list button", action.get("button"), LIST_BUTTON)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= SECTIONS:
        problems.append(f"sections: need 1..{SECTIONS}")
        return
    ids = []
    for section in sections:
        if len(sections) > 1 or "title" in section:
            _length(problems, "section title", section.get("title"), SECTION_TITLE)
        for row in section.get("rows") or []:
            _length(problems, "row title", row.get("title"), ROW_TITLE)
            _length(problems, "row id", row.get("id"), ROW_ID)
            if row.get("description") is not None:
                _length(problems, "row description", row.get("description"), ROW_DESCRIPTION)
            ids.append(row.get("id"))
    if not 1 <= len(ids) <= ROWS:
        problems.append(f"rows: need 1..{ROWS} across all sections, got {len(ids)}")
    if len(set(map(str, ids))) != len(ids):
        problems.append("row ids are not unique")
