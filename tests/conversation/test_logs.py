"""Log lines: JSON objects or readable text, correlation fields, masking, no bodies at INFO."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest

from conversation import logs
from conversation.logs import (
    JsonFormatter,
    ParleyHandler,
    TextFormatter,
    bind,
    clear_context,
    configure_logging,
    log_context,
    mask_identity,
    scrub,
    webhook_correlation_id,
)
from settings import SettingsError, load_settings

PHONE = "15550001111"
BSUID = "US.13491208655302741918"
WAMID = "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTk1NTAwMDExMTE5ODc2NTQzMjEA"
PRODUCTION = {
    "PARLEY_ENV": "production",
    "DATABASE_URL": "postgresql://u@db/parley",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_VERIFY_TOKEN": "v",
    "WHATSAPP_ACCESS_TOKEN": "a",
    "PARLEY_ADMIN_TOKEN": "an-admin-token",
}


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    """Each test may reconfigure the root logger; put it back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    clear_context()
    yield
    clear_context()
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(fmt: str = "json", level: int = logging.DEBUG) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logs.{fmt}.{level}")
    logger.handlers[:] = [ParleyHandler(stream, fmt)]
    logger.setLevel(level)
    logger.propagate = False
    return logger, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_carry_level_event_context_and_extras() -> None:
    logger, stream = capture()
    bind(wamid=WAMID, template="new_order", step="quantity")
    logger.info("answer stored (%d bytes)", 12, extra={"outbox_id": 7, "delay": 1.5, "ok": True})
    logger.warning("second line\nwith a newline")
    first, second = lines(stream)  # one object per line, even for a multi-line message
    assert first["level"] == "INFO" and first["logger"] == logger.name
    assert first["event"] == "answer stored (12 bytes)"
    assert (first["wamid"], first["template"], first["step"]) == (WAMID, "new_order", "quantity")
    assert (first["outbox_id"], first["delay"], first["ok"]) == (7, 1.5, True)
    assert first["ts"].endswith("Z")
    assert second["event"] == "second line\nwith a newline"


def test_extra_wins_over_context_and_cleared_context_is_absent() -> None:
    logger, stream = capture()
    bind(wamid="wamid.CONTEXT")
    logger.info("x", extra={"wamid": "wamid.EXTRA"})
    clear_context()
    logger.info("y")
    first, second = lines(stream)
    assert first["wamid"] == "wamid.EXTRA"
    assert "wamid" not in second and "template" not in second


def test_log_context_restores_what_was_bound() -> None:
    bind(wamid="wamid.OUTER")
    with log_context(wamid="wamid.INNER", step="s"):
        assert logs.current_context() == {"wamid": "wamid.INNER", "step": "s"}
    assert logs.current_context() == {"wamid": "wamid.OUTER"}
    with pytest.raises(TypeError):
        bind(user="x")


@pytest.mark.parametrize("key", ["to", "user_key", "phone", "recipient", "user_id", "wa_id"])
def test_identity_keys_are_masked(key: str) -> None:
    logger, stream = capture()
    logger.info("send", extra={key: PHONE})
    logger.info("send", extra={key: "+" + PHONE})
    logger.info("send", extra={key: BSUID})
    logger.info("send", extra={key: int(PHONE)})
    assert [line[key] for line in lines(stream)] == ["***1111", "***1111", "US.***1918", "***1111"]
    assert PHONE not in stream.getvalue() and BSUID not in stream.getvalue()


def test_identities_inside_messages_and_tracebacks_are_masked_but_ids_are_not() -> None:
    logger, stream = capture()
    try:
        raise ValueError(f"no conversation for {PHONE} or {BSUID}")
    except ValueError:
        logger.exception("failed for %s (%s)", PHONE, BSUID, extra={"note": f"user {PHONE}"})
    task = "Task parley.outbox.deliver[20649838-c86d-4431-b0a1-410a5f02488e] received"
    logger.info(task)
    logger.info("graph accepted %s", WAMID, extra={"reply_wamid": WAMID, "phone_number_id": "100000000000001"})
    logger.info("GET /webhook?hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1 200")
    failed, received, accepted, handshake = lines(stream)
    assert failed["event"] == "failed for ***1111 (US.***1918)"
    assert failed["note"] == "user ***1111"
    assert "ValueError: no conversation for ***1111 or US.***1918" in failed["exc"]
    assert received["event"] == task  # a task id is not a phone number
    assert accepted["event"] == f"graph accepted {WAMID}" and accepted["reply_wamid"] == WAMID
    assert accepted["phone_number_id"] == "100000000000001"
    assert "s3cret" not in handshake["event"] and "hub.verify_token=***" in handshake["event"]
    assert PHONE not in stream.getvalue() and BSUID.split(".")[1] not in stream.getvalue()


def test_mask_and_scrub_shapes() -> None:
    assert mask_identity("US.ENT.abcdef123456") == "US.***3456"
    assert mask_identity("123") == "***"
    assert scrub("sizes 3145728 and 1234567 stay") == "sizes 3145728 and 1234567 stay"  # under 8 digits
    assert scrub("call +4915112345678 now") == "call ***5678 now"
    assert scrub("module worker.inbound and IO.Buffered stay") == "module worker.inbound and IO.Buffered stay"
    assert scrub("Authorization: Bearer EAAG123.abc") == "Authorization: Bearer ***"


@pytest.mark.parametrize("key", ["body", "text", "payload", "content", "answers", "context", "data"])
def test_bodies_only_at_debug(key: str) -> None:
    logger, stream = capture()
    secret = {"text": {"body": f"my card {PHONE}"}}
    logger.info("received", extra={key: secret})
    logger.warning("received", extra={key: secret})
    logger.debug("received", extra={key: secret})
    info, warning, debug = lines(stream)
    assert info[key] == warning[key] == logs.OMITTED
    assert debug[key] == {"text": {"body": "my card ***1111"}}  # shown, identities still masked
    assert "my card" not in json.dumps([info, warning])


def test_text_format_is_readable_and_masked() -> None:
    logger, stream = capture("text")
    bind(wamid=WAMID, template="main_menu", step="initial")
    logger.info("inbound message handled", extra={"outcome": "started", "user_key": PHONE})
    line = stream.getvalue().strip()
    assert f"INFO {logger.name} [{WAMID} main_menu/initial] inbound message handled" in line
    assert line.endswith("outcome=started user_key=***1111")
    with pytest.raises(ValueError):
        ParleyHandler(io.StringIO(), "xml")
    assert isinstance(ParleyHandler(io.StringIO(), "text").formatter, TextFormatter)
    assert isinstance(ParleyHandler(io.StringIO(), "json").formatter, JsonFormatter)


def test_configure_logging_installs_one_handler_and_keeps_others() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    stream = io.StringIO()
    configure_logging(load_settings({"PARLEY_ENV": "test", "PARLEY_LOG_FORMAT": "json"}), stream=stream)
    configure_logging(load_settings({"PARLEY_ENV": "test", "PARLEY_LOG_FORMAT": "json"}), "DEBUG", stream)
    ours = [h for h in root.handlers if isinstance(h, ParleyHandler)]
    assert len(ours) == 1 and foreign in root.handlers
    assert root.level == logging.DEBUG
    logging.getLogger("test.logs.root").debug("through the root", extra={"to": PHONE})
    [line] = lines(stream)
    assert line["event"] == "through the root" and line["to"] == "***1111"


def test_log_format_setting() -> None:
    assert load_settings({"PARLEY_ENV": "development"}).log_format == "text"
    assert load_settings(PRODUCTION).log_format == "json"
    assert load_settings({**PRODUCTION, "PARLEY_LOG_FORMAT": "TEXT"}).log_format == "text"
    with pytest.raises(SettingsError, match="PARLEY_LOG_FORMAT"):
        load_settings({"PARLEY_LOG_FORMAT": "xml"})


def test_gunicorn_log_config_routes_gunicorn_lines_through_parley() -> None:
    settings = load_settings({"PARLEY_ENV": "test", "PARLEY_LOG_FORMAT": "json"})
    config = logs.gunicorn_log_config(settings)
    gunicorn_loggers = {name: logging.getLogger(name) for name in ("gunicorn.error", "gunicorn.access")}
    saved = {name: (lg.handlers[:], lg.propagate, lg.level) for name, lg in gunicorn_loggers.items()}
    try:
        logging.config.dictConfig(config)
        [handler] = [h for h in logging.getLogger().handlers if isinstance(h, ParleyHandler)]
        assert handler.fmt == "json"
        assert all(lg.propagate and not lg.handlers for lg in gunicorn_loggers.values())
    finally:
        for name, (handlers, propagate, level) in saved.items():
            gunicorn_loggers[name].handlers[:] = handlers
            gunicorn_loggers[name].propagate = propagate
            gunicorn_loggers[name].setLevel(level)


def test_webhook_correlation_id() -> None:
    def doc(value: dict[str, Any]) -> dict[str, Any]:
        return {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}

    assert webhook_correlation_id(doc({"messages": [{"id": "wamid.A"}, {"id": "wamid.B"}]})) == "wamid.A"
    assert webhook_correlation_id(doc({"statuses": [{"id": "wamid.S"}]})) == "wamid.S"
    for garbage in ({}, [], "x", doc({}), doc({"messages": []}), doc({"messages": [{"id": 5}]}), {"entry": "x"}):
        assert webhook_correlation_id(garbage) is None


def test_handler_without_stream_follows_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    handler = ParleyHandler(fmt="json")
    logger = logging.getLogger("test.logs.stderr")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("to stderr", extra={"phone": PHONE})
    assert json.loads(capsys.readouterr().err)["phone"] == "***1111"
    logger.handlers[:] = []
