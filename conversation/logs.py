"""Log lines: JSON objects (one per line) in production, readable text in development.

Every line carries the level, the event (the message) and, when known, the WhatsApp
message id that started the work (``wamid``, the correlation id from receiver to worker
to sender) with the ``template`` and ``step``. Those come from context variables set
with :func:`bind`, or from ``extra={...}`` of the call; any other ``extra`` key is
printed too.

Customers are never written in clear: values under identity keys (``to``, ``user_key``,
``phone``, ``recipient``, ...) keep their last 4 characters (a BSUID keeps its country
too), and phone-number-like digit runs and BSUIDs inside messages and tracebacks are
masked the same way. Message bodies (``body``, ``text``, ``payload``, Celery's ``data``,
...) are printed at DEBUG only. Pure stdlib: gunicorn's config and Celery's logging
signal both use it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from settings import Settings

FORMATS = ("json", "text")
CONTEXT_FIELDS = ("wamid", "template", "step")

_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"parley_log_{name}", default=None) for name in CONTEXT_FIELDS
}

# Values under these keys identify a customer: masked wherever they appear.
IDENTITY_KEYS = frozenset(
    {"to", "user_key", "user", "users", "phone", "phone_number", "recipient", "user_id", "wa_id", "from", "bsuid"}
)
# Values under these keys may hold what a customer wrote: printed at DEBUG only.
# ("data" is Celery's task context, whose args carry the raw webhook body.)
BODY_KEYS = frozenset({"body", "text", "content", "payload", "raw", "answers", "context", "caption", "data"})
# Ids that look like digits but identify no customer; never rewritten.
SAFE_KEYS = frozenset({"wamid", "reply_wamid", "inbound_wamid", "phone_number_id", "outbox_id", "task_id"})
OMITTED = "[omitted]"

# A phone number: 8+ digits standing alone (not inside a word, a hex id, a dotted id or
# a dashed one such as a task's UUID).
_PHONE = re.compile(r"(?<![\w.+-])\+?\d{8,}(?![\w-])")
# A BSUID: country, a dot, an optional kind ("ENT."), then an id with digits in it.
_BSUID = re.compile(r"(?<![\w.])([A-Z]{2})\.((?:[A-Z]+\.)?[A-Za-z0-9]{6,})(?![\w.])")
_SECRETS = (
    (re.compile(r"(hub\.verify_token=)[^&\s\"']+"), r"\1***"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
)
# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


# --- correlation context ------------------------------------------------------------


def bind(**fields: str | None) -> None:
    """Set ``wamid``, ``template`` and/or ``step`` for every later line of this context."""
    for name, value in fields.items():
        _var(name).set(value)


def clear_context() -> None:
    """Forget the correlation fields (between requests and tasks, which reuse threads)."""
    for var in _context.values():
        var.set(None)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """``bind`` for the duration of a block, then restore what was there."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
        (_var(name), _var(name).set(value)) for name, value in fields.items()
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_context() -> dict[str, str]:
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


def _var(name: str) -> ContextVar[str | None]:
    try:
        return _context[name]
    except KeyError:
        raise TypeError(f"unknown log context field {name!r}; expected one of {CONTEXT_FIELDS}") from None


def webhook_correlation_id(document: object) -> str | None:
    """The first message id of a parsed webhook body (entry[0].changes[0].value.messages[0].id).

    Reads only that path; anything unexpected gives None (the parser judges the payload).
    """
    try:
        value = document["entry"][0]["changes"][0]["value"]  # type: ignore[index]
        ids = value.get("messages") or value.get("statuses")
        wamid = ids[0]["id"]
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return wamid[:256] if isinstance(wamid, str) else None


# --- masking ------------------------------------------------------------------------


def mask_identity(value: object) -> str:
    """A customer id fit for logs: ``***1111`` for a phone, ``US.***1918`` for a BSUID."""
    text = str(value)
    bsuid = re.fullmatch(r"([A-Za-z]{2})\.(.+)", text)
    if bsuid:
        return f"{bsuid.group(1)}.***{bsuid.group(2)[-4:]}" if len(bsuid.group(2)) > 4 else f"{bsuid.group(1)}.***"
    return "***" + text[-4:] if len(text) > 4 else "***"


def _mask_bsuid(match: re.Match[str]) -> str:
    tail = match.group(2)
    if not any(c.isdigit() for c in tail):
        return match.group(0)  # a dotted name, not a user id
    return f"{match.group(1)}.***{tail[-4:]}"


def scrub(text: str) -> str:
    """Mask phone numbers, BSUIDs and secrets inside free text (messages, tracebacks)."""
    text = _PHONE.sub(lambda m: mask_identity(m.group(0)), text)
    text = _BSUID.sub(_mask_bsuid, text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _clean(key: str, value: Any, level: int) -> Any:
    if value is None or (isinstance(value, bool | int | float) and key not in IDENTITY_KEYS):
        return value
    if key in BODY_KEYS and level > logging.DEBUG:
        return OMITTED
    if key in IDENTITY_KEYS:
        if isinstance(value, list | tuple | set | frozenset):
            return [mask_identity(v) for v in value]
        return mask_identity(value)
    if key in SAFE_KEYS or key.endswith("wamid"):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v, level) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(key, v, level) for v in value]
    return scrub(str(value))


# --- formatting ---------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Puts the correlation fields on the record unless the call passed them in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Everything a line shows, masked, in a stable order: ts, level, logger, event, context, extras."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the line
        message = f"{record.msg!r} {record.args!r}"
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname,
        "logger": record.name,
        "event": scrub(message),
    }
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = str(value)
    for key, value in vars(record).items():
        if key in _STANDARD_ATTRS or key in CONTEXT_FIELDS or key.startswith("_"):
            continue
        fields[key] = _clean(key, value, record.levelno)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line; tracebacks go into ``exc`` (masked)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        if record.exc_info:
            fields["exc"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            fields["exc"] = scrub(record.exc_text)
        if record.stack_info:
            fields["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(fields, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2026-05-01 12:00:00,123 INFO worker.inbound [wamid main_menu/initial] event key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        wamid = fields.pop("wamid", None)
        where = "/".join(v for v in (fields.pop("template", None), fields.pop("step", None)) if v)
        ctx = " ".join(v for v in (wamid, where) if v)
        for key in ("ts", "level", "logger"):
            del fields[key]
        line = f"{self.formatTime(record)} {record.levelname} {record.name} "
        line += (f"[{ctx}] " if ctx else "") + fields.pop("event")
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line += "\n" + scrub(record.exc_text)
        return line


class ParleyHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler with parley's format, masking and correlation fields.

    ``fmt`` is ``json`` or ``text``. Usable from ``logging.config.dictConfig`` (gunicorn's
    ``logconfig_dict``): ``{"class": "conversation.logs.ParleyHandler", "fmt": "json"}``.
    Without a ``stream`` it writes to whatever ``sys.stderr`` is at the time of each line
    (as ``logging.lastResort`` does), so a swapped stderr (pytest's capture) never goes stale.
    """

    def __init__(self, stream: TextIO | None = None, fmt: str = "text") -> None:
        super().__init__(stream)
        self._stream = stream
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt
        self.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        self.addFilter(ContextFilter())

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._stream = value


def configure_logging(
    settings: Settings, level: int | str | None = None, stream: TextIO | None = None
) -> ParleyHandler:
    """Give the root logger parley's handler, replacing one set up before (never two).

    Handlers that others put on the root logger (pytest's, for one) are left alone.
    ``level`` overrides ``settings.log_level`` (Celery passes its ``--loglevel``).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, ParleyHandler)]:
        root.removeHandler(old)
    handler = ParleyHandler(stream, settings.log_format)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    return handler


def gunicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A ``logconfig_dict`` for gunicorn: its error and access lines through parley's handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": settings.log_level, "handlers": ["parley"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
        "handlers": {"parley": {"class": "conversation.logs.ParleyHandler", "fmt": settings.log_format}},
        "formatters": {},
    }
