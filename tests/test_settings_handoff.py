"""The settings of people in the loop and events out: defaults, and what production refuses."""

from __future__ import annotations

import pytest

from settings import DEV_EVENTS_SECRET, SettingsError, load_settings

PRODUCTION = {
    "PARLEY_ENV": "production",
    "DATABASE_URL": "postgresql://db.invalid/parley",
    "CELERY_BROKER_URL": "redis://broker.invalid:6379/0",
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_VERIFY_TOKEN": "v",
    "WHATSAPP_ACCESS_TOKEN": "a",
}


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.handoff_words == ("agent",)
    assert settings.handoff_timeout_hours == 24
    assert (settings.events_url, settings.events_secret) == (None, None)


def test_configured() -> None:
    settings = load_settings(
        {
            "PARLEY_HANDOFF_WORDS": "agent, human ,person",
            "PARLEY_HANDOFF_TIMEOUT_HOURS": "8",
            "PARLEY_EVENTS_URL": " https://helpdesk.example/hooks/parley ",
            "PARLEY_EVENTS_SECRET": "s3cret",
        }
    )
    assert settings.handoff_words == ("agent", "human", "person")
    assert settings.handoff_timeout_hours == 8
    assert (settings.events_url, settings.events_secret) == ("https://helpdesk.example/hooks/parley", "s3cret")


def test_outside_production_an_events_url_alone_signs_with_the_public_development_secret() -> None:
    assert load_settings({"PARLEY_EVENTS_URL": "http://127.0.0.1:9000/"}).events_secret == DEV_EVENTS_SECRET


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PARLEY_EVENTS_URL": "https://helpdesk.example/"}, "PARLEY_EVENTS_SECRET"),
        ({"PARLEY_EVENTS_URL": "https://helpdesk.example/", "PARLEY_EVENTS_SECRET": DEV_EVENTS_SECRET}, "public"),
    ],
)
def test_production_refuses_unsigned_or_publicly_signed_events(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings({**PRODUCTION, **env})
    assert load_settings({**PRODUCTION, **env, "PARLEY_EVENTS_SECRET": "a-real-secret"}).events_secret


@pytest.mark.parametrize(
    "env",
    [
        {"PARLEY_EVENTS_URL": "ftp://helpdesk.example/"},
        {"PARLEY_HANDOFF_TIMEOUT_HOURS": "0"},
        {"PARLEY_HANDOFF_TIMEOUT_HOURS": "a day"},
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        load_settings(env)
