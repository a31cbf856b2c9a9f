"""The flow format: one workflow template per YAML file, as pydantic models.

Field names are the ones the flow files use. Every WhatsApp limit that Meta would
enforce on send (the lengths and counts of interactive messages) is a constraint here,
so a flow Meta would reject never loads. Graph rules (targets, reachability,
placeholders) live in ``lint.py``; this module only checks each field on its own.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from templates.template_call import MAX_REMINDER, Duration, TemplateUse, parse_duration

NAME_PATTERN = r"^[a-z0-9_]+$"
# The step every template starts at: its entry message is that step's message.
INITIAL = "initial"
# A target ``<name>_flow`` names template ``<name>``: flows say "shop_flow" for the shop.
ALIAS_SUFFIX = "_flow"
# Reserved option ids the engine itself puts on its "way out" menu.
RESERVED_PREFIX = "parley:"
# What a flow with ``trigger: order`` finds in its context: the catalog cart that started it.
ORDER_CONTEXT = frozenset({"cart_items", "cart_summary", "cart_total", "cart_currency", "cart_note", "catalog_id"})

# WhatsApp's limits on interactive messages: Meta refuses a message over any of them.
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_LIST_BUTTON = 20
MAX_SECTIONS = 10
MAX_ROWS = 10
MAX_SECTION_TITLE = 24
MAX_ROW_ID = 200
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_HEADER = 60
MAX_FOOTER = 60
MAX_INTERACTIVE_BODY = 1024
MAX_TEXT_BODY = 4096

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=64)]


def _text(max_len: int) -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_len)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a flow file must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Body(Strict):
    text: _text(MAX_INTERACTIVE_BODY)  # type: ignore[valid-type]


class TextBody(Strict):
    text: _text(MAX_TEXT_BODY)  # type: ignore[valid-type]


class Header(Strict):
    type: Literal["text"] = "text"
    text: _text(MAX_HEADER)  # type: ignore[valid-type]


class Footer(Strict):
    text: _text(MAX_FOOTER)  # type: ignore[valid-type]


class Reply(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BUTTON_ID)]
    title: _text(MAX_BUTTON_TITLE)  # type: ignore[valid-type]


class Button(Strict):
    type: Literal["reply"] = "reply"
    reply: Reply


class ButtonAction(Strict):
    buttons: Annotated[list[Button], Field(min_length=1, max_length=MAX_BUTTONS)]


class Row(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ROW_ID)]
    title: _text(MAX_ROW_TITLE)  # type: ignore[valid-type]
    description: _text(MAX_ROW_DESCRIPTION) | None = None  # type: ignore[valid-type]


class Section(Strict):
    title: _text(MAX_SECTION_TITLE)  # type: ignore[valid-type]
    rows: Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)]


class ListAction(Strict):
    button: _text(MAX_LIST_BUTTON)  # type: ignore[valid-type]
    sections: Annotated[list[Section], Field(min_length=1, max_length=MAX_SECTIONS)]

    @model_validator(mode="after")
    def _rows_in_total(self) -> ListAction:
        total = sum(len(s.rows) for s in self.sections)
        if total > MAX_ROWS:
            raise ValueError(f"a list holds at most {MAX_ROWS} rows across all sections, this one has {total}")
        return self


class Option(BaseModel):
    """One choice a message offers: a reply button or a list row."""

    model_config = ConfigDict(frozen=True)
    id: str
    title: str
    description: str | None = None


def _unique_ids(options: list[Option], kind: str) -> None:
    seen: set[str] = set()
    for o in options:
        if o.id in seen:
            raise ValueError(f"{kind} id {o.id!r} is used twice; option ids must be unique")
        if o.id.startswith(RESERVED_PREFIX):
            raise ValueError(f"{kind} id {o.id!r} uses the reserved prefix {RESERVED_PREFIX!r}")
        seen.add(o.id)


class ButtonMessage(Strict):
    type: Literal["button"]
    header: Header | None = None
    body: Body
    footer: Footer | None = None
    action: ButtonAction

    @model_validator(mode="after")
    def _unique(self) -> ButtonMessage:
        _unique_ids(self.options(), "button")
        titles = [b.reply.title for b in self.action.buttons]
        if len(set(titles)) != len(titles):
            raise ValueError("button titles must be unique within a message")
        return self

    def options(self) -> list[Option]:
        return [Option(id=b.reply.id, title=b.reply.title) for b in self.action.buttons]


class ListMessage(Strict):
    type: Literal["list"]
    header: Header | None = None
    body: Body
    footer: Footer | None = None
    action: ListAction

    @model_validator(mode="after")
    def _unique(self) -> ListMessage:
        _unique_ids(self.options(), "row")
        return self

    def options(self) -> list[Option]:
        return [Option(id=r.id, title=r.title, description=r.description) for s in self.action.sections for r in s.rows]


class TextMessage(Strict):
    type: Literal["text"]
    body: TextBody

    def options(self) -> list[Option]:
        return []


Message = Annotated[ButtonMessage | ListMessage | TextMessage, Field(discriminator="type")]

ValidationKind = Literal["number", "integer", "decimal", "email", "phone", "date", "yes_no", "regex", "text"]


class Validation(Strict):
    type: ValidationKind
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1, le=MAX_TEXT_BODY)

    @model_validator(mode="after")
    def _consistent(self) -> Validation:
        if self.type == "regex":
            if not self.pattern:
                raise ValueError("validation regex needs a 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        elif self.pattern is not None:
            raise ValueError(f"'pattern' only applies to validation regex, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError("min_length is greater than max_length")
        if (self.min is not None or self.max is not None) and self.type not in {"number", "integer", "decimal"}:
            raise ValueError(f"min/max only apply to number, integer or decimal, not {self.type}")
        return self


class HttpAction(Strict):
    """POST the context as JSON to ``url``; merge the JSON object it answers."""

    http: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    timeout: float = Field(default=5.0, gt=0, le=30)
    provides: list[Name] = Field(default_factory=list)


class Step(Strict):
    context_key: Name | None = None
    prompt: _text(MAX_TEXT_BODY) | None = None  # type: ignore[valid-type]
    message: Message | None = None
    validation: Validation | None = None
    error: _text(MAX_TEXT_BODY) | None = None  # type: ignore[valid-type]
    next_step: Annotated[str, StringConstraints(min_length=1)] | None = None
    next_steps: dict[str, Annotated[str, StringConstraints(min_length=1)]] | None = None
    action: Name | HttpAction | None = None
    end_conversation: bool = False
    # Sends its prompt, then a person takes over (templates/handoff_step.py has its rules).
    handoff: bool = False
    # A reminder when the customer has not answered for this long: the text inside their
    # 24-hour window, the message template once it has closed (either may be left out).
    remind_after: Duration | None = None
    reminder: _text(MAX_TEXT_BODY) | None = None  # type: ignore[valid-type]
    reminder_template: TemplateUse | None = None

    @model_validator(mode="after")
    def _reminder_is_whole(self) -> Step:
        has_reminder = self.reminder is not None or self.reminder_template is not None
        if self.remind_after is None and has_reminder:
            raise ValueError("a reminder needs remind_after (e.g. 30m): how long to wait for an answer")
        if self.remind_after is not None:
            if not has_reminder:
                raise ValueError("remind_after needs a reminder text or a reminder_template")
            if parse_duration(self.remind_after) > MAX_REMINDER:
                raise ValueError("remind_after is at most 30d")
            if self.end_conversation:
                raise ValueError("remind_after on a step that ends the conversation: nobody is waited for")
        return self

    @field_validator("validation", mode="before")
    @classmethod
    def _short_validation(cls, value: Any) -> Any:
        # `validation: number` is shorthand for `validation: {type: number}`.
        return {"type": value} if isinstance(value, str) else value

    def key(self, name: str) -> str:
        """Where this step's answer is stored in the context."""
        return self.context_key or name

    def options(self) -> list[Option]:
        return self.message.options() if self.message is not None else []


class _Menu:
    steps: dict[str, Step]


class ButtonMenu(ButtonMessage, _Menu):
    steps: dict[Name, Step]


class ListMenu(ListMessage, _Menu):
    steps: dict[Name, Step]


class TextMenu(TextMessage, _Menu):
    steps: dict[Name, Step]


MenuStructure = Annotated[ButtonMenu | ListMenu | TextMenu, Field(discriminator="type")]


class TemplateDef(Strict):
    template_name: Name
    template_type: Literal["button", "list", "text"]
    trigger_keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list
    )
    is_active: bool = True
    priority: int = 0
    expiry_hours: int | None = Field(default=None, ge=1, le=24 * 30)
    # ``order``: the flow starts when a customer sends a cart from the catalog.
    trigger: Literal["order"] | None = None
    description: str | None = None
    # The language of the texts below (a code like en or pt_BR; None: the deployment's
    # default), and per other language only texts, checked by translation_checks.py.
    language: str | None = None
    translations: dict[str, Any] | None = None
    menu_structure: MenuStructure

    @model_validator(mode="after")
    def _type_matches(self) -> TemplateDef:
        if self.template_type != self.menu_structure.type:
            raise ValueError(
                f"template_type {self.template_type!r} does not match menu_structure.type {self.menu_structure.type!r}"
            )
        if INITIAL not in self.menu_structure.steps:
            raise ValueError("menu_structure.steps needs an 'initial' step")
        return self

    @property
    def steps(self) -> dict[str, Step]:
        return self.menu_structure.steps

    def entry_message(self) -> dict[str, Any]:
        """The entry message as WhatsApp content (no steps)."""
        return self.menu_structure.model_dump(exclude={"steps"}, exclude_none=True)

    def step_options(self, step_name: str) -> list[Option]:
        """Options a customer may pick at ``step_name``; ``initial`` offers the entry message's."""
        step = self.steps[step_name]
        if step_name == INITIAL and step.message is None:
            return self.menu_structure.options()
        return step.options()
