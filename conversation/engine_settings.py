"""The engine's configuration, read from the deployment's settings."""

from __future__ import annotations

from datetime import timedelta

from conversation import consent_route
from conversation.state import EngineConfig
from conversation.texts.catalogue import deployment_catalogues
from settings import Settings


def engine_config(settings: Settings) -> EngineConfig:
    """What the engine needs of the deployment's settings."""
    return EngineConfig(
        cancel_words=settings.cancel_words,
        max_invalid_answers=settings.max_invalid_answers,
        fallback_text=settings.fallback_text,
        fallback_period=timedelta(seconds=settings.fallback_period_seconds),
        default_expiry=timedelta(hours=settings.default_expiry_hours),
        catalogues=deployment_catalogues(settings.default_language, settings.templates_dir, settings.fallback_text),
        handoff_words=settings.handoff_words,
        **consent_route.engine_settings(settings),
    )
