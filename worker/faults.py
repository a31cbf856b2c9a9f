"""Fault injection for the reliability suite (tests/reliability). A no-op in any real deployment.

Worker code calls :func:`point` at a few exact places (``before_commit`` / ``after_commit``
in ``worker/inbound.py``, ``after_send`` in ``worker/sender.py``). Nothing happens unless
``PARLEY_ENV=test`` and ``PARLEY_FAULT_POINT`` names that point (a comma list; a point
may carry its own probability, ``after_send:0.1``); then, with that probability or
``PARLEY_FAULT_PROBABILITY`` (default 1), the process does ``PARLEY_FAULT_ACTION``:

- ``kill`` (default): SIGKILL itself, as a crash or an OOM kill would;
- ``sleep:N``: stall for N seconds (a task that outlives the broker's visibility timeout);
- ``raise``: raise :class:`InjectedFault` (a poison message).

``PARLEY_FAULT_MATCH`` restricts the fault to calls whose ``subject`` (the customer's text)
contains it; ``PARLEY_FAULT_UNTIL`` (Unix seconds) switches it off after that moment, so a
scenario can inject faults and then let the system settle. Each fault is announced on
stderr (``parley-fault: kill at after_send``) so the suite can count them in the logs.

This module reads ``os.environ`` itself, on purpose: it is a test hook, not a setting, and
``worker/guards.py`` refuses to start a production process that has it set.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from functools import lru_cache

POINTS = frozenset({"before_commit", "after_commit", "after_send"})
ENV_PREFIX = "PARLEY_FAULT_"


class InjectedFault(RuntimeError):
    """Raised by the ``raise`` action: stands for any bug that fails one item every time."""


@dataclass(frozen=True)
class FaultSpec:
    points: dict[str, float]  # point → probability
    action: str  # kill | sleep | raise
    sleep_seconds: float = 0.0
    match: str | None = None
    until: float | None = None


def parse(env: dict[str, str]) -> FaultSpec | None:
    """The fault configured in ``env``, or None (no fault, the normal case)."""
    if env.get("PARLEY_ENV", "").strip().lower() != "test":
        return None
    default = float(env.get("PARLEY_FAULT_PROBABILITY") or 1.0)
    points: dict[str, float] = {}
    for item in env.get("PARLEY_FAULT_POINT", "").split(","):
        name, _, chance = item.strip().partition(":")
        if name:
            points[name] = float(chance) if chance else default
    if not points:
        return None
    unknown = set(points) - POINTS
    if unknown:
        raise ValueError(f"unknown fault point(s) {sorted(unknown)}; known: {sorted(POINTS)}")
    action, _, arg = (env.get("PARLEY_FAULT_ACTION") or "kill").partition(":")
    if action not in {"kill", "sleep", "raise"}:
        raise ValueError(f"PARLEY_FAULT_ACTION must be kill, sleep:N or raise, got {action!r}")
    until = env.get("PARLEY_FAULT_UNTIL")
    return FaultSpec(
        points=points,
        action=action,
        sleep_seconds=float(arg or 0) if action == "sleep" else 0.0,
        match=env.get("PARLEY_FAULT_MATCH") or None,
        until=float(until) if until else None,
    )


@lru_cache(maxsize=1)
def _spec() -> FaultSpec | None:
    return parse(dict(os.environ))


def configured(env: dict[str, str]) -> list[str]:
    """Names of the fault-injection variables set in ``env`` (for the production guard)."""
    return sorted(name for name, value in env.items() if name.startswith(ENV_PREFIX) and value)


def point(name: str, subject: str | None = None) -> None:
    """Fault point ``name``: does nothing unless a test configured a fault here."""
    spec = _spec()
    if spec is None or name not in spec.points:
        return
    if spec.until is not None and time.time() > spec.until:
        return
    if spec.match is not None and (subject is None or spec.match not in subject):
        return
    if random.random() >= spec.points[name]:
        return
    os.write(2, f"parley-fault: {spec.action} at {name}\n".encode())
    if spec.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif spec.action == "sleep":
        time.sleep(spec.sleep_seconds)
    else:
        raise InjectedFault(f"fault injected at {name}")
