"""What a flow says to name a message template, and how long a step waits for a reminder.

Plain pydantic types the flow schema uses (``Step.reminder_template``, ``remind_after``);
whether the catalogue declares the template is ``template_uses.py``'s check.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DURATION_PATTERN = r"^[1-9][0-9]{0,5}[smhd]$"
# A reminder later than this would go to a conversation that expired long before (30 days at most).
MAX_REMINDER = timedelta(days=30)

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]


def parse_duration(text: str) -> timedelta:
    """``30m`` → 30 minutes (units s, m, h, d). Raises ValueError."""
    if not re.match(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is no duration like 90s, 30m, 2h or 1d")
    return timedelta(**{_UNITS[text[-1]]: int(text[:-1])})


class TemplateUse(BaseModel):
    """``{name: order_reminder, language: en_US, parameters: ["{profile_name}"]}`` in a flow."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", min_length=1)]
    language: Annotated[str, StringConstraints(min_length=2)]
    parameters: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)
