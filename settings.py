"""The one place that reads the environment.

Everything else asks for a :class:`Settings` (``get_settings()``) instead of touching
``os.environ``. Unset variables fall back to embedded defaults that need no server and
no Meta account (SQLite under ``var/``, a SQLite-backed Celery broker, the sandbox
Graph API). With ``PARLEY_ENV=production`` the defaults are refused: a process that
would run on a toy database or without secrets stops with a one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VAR_DIR = ROOT / "var"

META_API_URL = "https://graph.facebook.com/v25.0"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
# Development-only secrets: public on purpose, refused in production.
DEV_APP_SECRET = "parley-dev-app-secret"
DEV_VERIFY_TOKEN = "parley-dev-verify-token"
DEV_ACCESS_TOKEN = "parley-sandbox-token"
# Bearer token of /admin/api outside production. Production has no default: without
# PARLEY_ADMIN_TOKEN the admin API is simply not registered (the receiver still starts).
DEV_ADMIN_TOKEN = "parley-dev-admin-token"
# Signs events out when PARLEY_EVENTS_URL is set without a secret; refused in production.
DEV_EVENTS_SECRET = "parley-dev-events-secret"


class SettingsError(RuntimeError):
    """A setting is missing or unsafe; the message is one line meant for the operator."""


# Every variable load_settings reads, for deployment files and their tests
# (tests/deploy checks this list against what load_settings actually reads).
ENV_VARS: tuple[str, ...] = (
    "PARLEY_ENV",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_API_URL",
    "PARLEY_PUBLIC_URL",
    "PARLEY_TEMPLATES_DIR",
    "PARLEY_ADMIN_TOKEN",
    "PARLEY_MAX_BODY_BYTES",
    "PARLEY_CANCEL_WORDS",
    "PARLEY_MAX_INVALID_ANSWERS",
    "PARLEY_FALLBACK_TEXT",
    "PARLEY_FALLBACK_PERIOD_SECONDS",
    "PARLEY_DEFAULT_EXPIRY_HOURS",
    "PARLEY_MARK_AS_READ",
    "PARLEY_GRAPH_CONNECT_TIMEOUT",
    "PARLEY_GRAPH_READ_TIMEOUT",
    "PARLEY_SEND_MAX_ATTEMPTS",
    "PARLEY_EXPIRE_INTERVAL_SECONDS",
    "PARLEY_SWEEP_INTERVAL_SECONDS",
    "PARLEY_SWEEP_GRACE_SECONDS",
    "PARLEY_PRUNE_INTERVAL_SECONDS",
    "PARLEY_RETENTION_DAYS",
    "PARLEY_LOG_LEVEL",
    "PARLEY_LOG_FORMAT",
    "PARLEY_METRICS_DIR",
    "PARLEY_WORKER_METRICS_PORT",
    "PARLEY_WORKER_METRICS_ADDR",
    "PARLEY_QUEUE_STALL_SECONDS",
    "PARLEY_SIMULATOR",
    # Business-initiated messages
    "PARLEY_OPT_OUT_WORDS",
    "PARLEY_OPT_IN_WORDS",
    "WHATSAPP_PHONE_NUMBER_ID",
    "PARLEY_HANDOFF_WORDS",
    "PARLEY_HANDOFF_TIMEOUT_HOURS",
    "PARLEY_EVENTS_URL",
    "PARLEY_EVENTS_SECRET",
    "PARLEY_DEFAULT_LANGUAGE",
)


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"expected a boolean (true/false), got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


def _words(raw: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None or raw.strip() == "":
        return default
    return tuple(w.strip() for w in raw.split(",") if w.strip())


def _log_format(raw: str | None, production: bool) -> str:
    value = (raw or "").strip().lower() or ("json" if production else "text")
    if value not in {"json", "text"}:
        raise SettingsError(f"PARLEY_LOG_FORMAT must be json or text, got {raw!r}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name} must be a port number (0 turns it off), got {value}")
    return value


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgres://`` / ``postgresql://`` URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    broker_url: str
    app_secret: str
    verify_token: str
    access_token: str
    api_url: str
    sandbox: bool
    public_url: str
    templates_dir: Path
    admin_token: str | None
    max_body_bytes: int
    cancel_words: tuple[str, ...]
    max_invalid_answers: int
    fallback_text: str
    fallback_period_seconds: int
    default_expiry_hours: int
    mark_as_read: bool
    graph_connect_timeout: float
    graph_read_timeout: float
    send_max_attempts: int
    expire_interval_seconds: int
    sweep_interval_seconds: int
    sweep_grace_seconds: int
    prune_interval_seconds: int
    retention_days: int
    log_level: str
    log_format: str = "text"  # json | text (conversation/logs.py)
    metrics_dir: Path = VAR_DIR / "metrics"  # Prometheus multiprocess files, one subfolder per process group
    worker_metrics_port: int = 9808  # each Celery worker's /metrics; 0: none
    worker_metrics_addr: str = "127.0.0.1"
    # /readyz fails when a queue's oldest message has waited longer (webhook/health.py).
    queue_stall_seconds: int = 120
    unset: tuple[str, ...] = field(default=())
    # PARLEY_SIMULATOR: None (unset) means on with the sandbox outside production.
    simulator: bool | None = None
    # Business-initiated messages: exact words that opt a customer out of / back into
    # notifications, and the business number a notification leaves from when the customer
    # never wrote to one (None: such a notification is refused with 422).
    opt_out_words: tuple[str, ...] = ("stop", "unsubscribe")
    opt_in_words: tuple[str, ...] = ("subscribe",)
    phone_number_id: str | None = None
    # People in the loop: words that ask for a person, and when a handoff lapses by itself.
    handoff_words: tuple[str, ...] = ("agent",)
    handoff_timeout_hours: int = 24
    # Events out: None means no events are recorded or sent.
    events_url: str | None = None
    events_secret: str | None = None
    # Language of a customer parley knows no language of (conversation/texts/).
    default_language: str = "en"

    @property
    def production(self) -> bool:
        return self.env == "production"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default ``os.environ``); raise SettingsError if unsafe."""
    env = os.environ if env is None else env
    mode = (env.get("PARLEY_ENV") or "development").strip().lower()
    if mode not in {"development", "production", "test"}:
        raise SettingsError(f"PARLEY_ENV must be development, production or test, got {mode!r}")
    production = mode == "production"

    unset = tuple(
        name
        for name in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "WHATSAPP_APP_SECRET",
            "WHATSAPP_VERIFY_TOKEN",
            "WHATSAPP_ACCESS_TOKEN",
        )
        if not (env.get(name) or "").strip()
    )
    if production and unset:
        raise SettingsError(f"refusing to start in production: {', '.join(unset)} not set")

    public_url = (env.get("PARLEY_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    access_token = (env.get("WHATSAPP_ACCESS_TOKEN") or "").strip()
    sandbox = not access_token
    api_url = (env.get("WHATSAPP_API_URL") or "").strip().rstrip("/")
    if not api_url:
        api_url = f"{public_url}/sandbox/graph/v25.0" if sandbox else META_API_URL
    if production and sandbox:
        raise SettingsError("refusing to start in production: WHATSAPP_ACCESS_TOKEN not set")
    if production and not api_url.startswith("https://"):
        raise SettingsError(f"refusing to start in production: WHATSAPP_API_URL must be https, got {api_url}")

    database_url = normalize_database_url(
        (env.get("DATABASE_URL") or "").strip() or f"sqlite:///{VAR_DIR / 'parley.sqlite3'}"
    )
    broker_url = (env.get("CELERY_BROKER_URL") or "").strip() or (f"sqla+sqlite:///{VAR_DIR / 'broker.sqlite3'}")
    if production and database_url.startswith("sqlite"):
        raise SettingsError("refusing to start in production: DATABASE_URL points at SQLite")
    admin_token = (env.get("PARLEY_ADMIN_TOKEN") or "").strip() or (None if production else DEV_ADMIN_TOKEN)
    if production and admin_token == DEV_ADMIN_TOKEN:
        raise SettingsError("refusing to start in production: PARLEY_ADMIN_TOKEN is the public development token")
    raw_simulator = (env.get("PARLEY_SIMULATOR") or "").strip()
    simulator = _bool(raw_simulator, False) if raw_simulator else None
    if simulator and not admin_token:
        # An unprotected simulator would let anyone sign webhooks with the app secret.
        raise SettingsError("refusing to start: PARLEY_SIMULATOR=true needs PARLEY_ADMIN_TOKEN")

    events_url, events_secret = _events(env, production)
    return Settings(
        env=mode,
        database_url=database_url,
        broker_url=broker_url,
        app_secret=(env.get("WHATSAPP_APP_SECRET") or "").strip() or DEV_APP_SECRET,
        verify_token=(env.get("WHATSAPP_VERIFY_TOKEN") or "").strip() or DEV_VERIFY_TOKEN,
        access_token=access_token or DEV_ACCESS_TOKEN,
        api_url=api_url,
        sandbox=sandbox,
        public_url=public_url,
        templates_dir=Path(env.get("PARLEY_TEMPLATES_DIR") or ROOT / "templates"),
        admin_token=admin_token,
        max_body_bytes=_int(env, "PARLEY_MAX_BODY_BYTES", 3 * 1024 * 1024),
        cancel_words=_words(env.get("PARLEY_CANCEL_WORDS"), ("cancel", "exit", "quit")),
        max_invalid_answers=_int(env, "PARLEY_MAX_INVALID_ANSWERS", 3),
        fallback_text=env.get("PARLEY_FALLBACK_TEXT") or "Sorry, I didn't get that. Send *hi* to see the menu.",
        fallback_period_seconds=_int(env, "PARLEY_FALLBACK_PERIOD_SECONDS", 3600),
        default_expiry_hours=_int(env, "PARLEY_DEFAULT_EXPIRY_HOURS", 24),
        mark_as_read=_bool(env.get("PARLEY_MARK_AS_READ"), True),
        graph_connect_timeout=float(env.get("PARLEY_GRAPH_CONNECT_TIMEOUT") or 3.05),
        graph_read_timeout=float(env.get("PARLEY_GRAPH_READ_TIMEOUT") or 10),
        send_max_attempts=_int(env, "PARLEY_SEND_MAX_ATTEMPTS", 8),
        expire_interval_seconds=_int(env, "PARLEY_EXPIRE_INTERVAL_SECONDS", 60),
        sweep_interval_seconds=_int(env, "PARLEY_SWEEP_INTERVAL_SECONDS", 30),
        sweep_grace_seconds=_int(env, "PARLEY_SWEEP_GRACE_SECONDS", 60),
        prune_interval_seconds=_int(env, "PARLEY_PRUNE_INTERVAL_SECONDS", 3600),
        retention_days=_int(env, "PARLEY_RETENTION_DAYS", 30),
        log_level=(env.get("PARLEY_LOG_LEVEL") or "INFO").upper(),
        log_format=_log_format(env.get("PARLEY_LOG_FORMAT"), production),
        metrics_dir=Path(env.get("PARLEY_METRICS_DIR") or VAR_DIR / "metrics"),
        worker_metrics_port=_port(env, "PARLEY_WORKER_METRICS_PORT", 9808),
        worker_metrics_addr=(env.get("PARLEY_WORKER_METRICS_ADDR") or "127.0.0.1").strip(),
        queue_stall_seconds=_int(env, "PARLEY_QUEUE_STALL_SECONDS", 120),
        unset=unset,
        simulator=simulator,
        opt_out_words=_words(env.get("PARLEY_OPT_OUT_WORDS"), ("stop", "unsubscribe")),
        opt_in_words=_words(env.get("PARLEY_OPT_IN_WORDS"), ("subscribe",)),
        phone_number_id=(env.get("WHATSAPP_PHONE_NUMBER_ID") or "").strip() or None,
        handoff_words=_words(env.get("PARLEY_HANDOFF_WORDS"), ("agent",)),
        handoff_timeout_hours=_positive(env, "PARLEY_HANDOFF_TIMEOUT_HOURS", 24),
        events_url=events_url,
        events_secret=events_secret,
        default_language=(env.get("PARLEY_DEFAULT_LANGUAGE") or "").strip() or "en",
    )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def _events(env: Mapping[str, str], production: bool) -> tuple[str | None, str | None]:
    """PARLEY_EVENTS_URL and the secret its events are signed with; both read unconditionally."""
    url = (env.get("PARLEY_EVENTS_URL") or "").strip() or None
    secret = (env.get("PARLEY_EVENTS_SECRET") or "").strip() or None
    if url is None:
        return None, secret
    if not url.startswith(("https://", "http://")):
        raise SettingsError(f"PARLEY_EVENTS_URL must be an http(s) URL, got {url!r}")
    if secret is None:
        # Outside production a receiver under test can still check signatures, with a public secret.
        if production:
            raise SettingsError(
                "refusing to start in production: PARLEY_EVENTS_URL is set but PARLEY_EVENTS_SECRET is not"
            )
        secret = DEV_EVENTS_SECRET
    if production and secret == DEV_EVENTS_SECRET:
        raise SettingsError("refusing to start in production: PARLEY_EVENTS_SECRET is the public development secret")
    return url, secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
