"""What the manager and a device say about maintenance jobs, free of any transport.

=====================  ================  ==========================================
message                direction         meaning
=====================  ================  ==========================================
:class:`JobRequest`    manager → device  run this job (re-sent by ID; run once)
:class:`JobResult`     device → manager  how it went: ``done`` with a result, or
                                         ``failed`` with an error code
=====================  ================  ==========================================

A device declares its settings -- names, kinds, ranges -- in its hello
(:class:`~remotecomm.sessions.messages.SettingSpec`, versioned by
``settings_version``); the manager checks a value against them before it
sends a ``config-set``, and the device checks again.
:mod:`remotecomm.xmpp.payloads` alone turns these into XMPP payloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from remotecomm.sessions.messages import SettingError, SettingSpec

# What a job can ask for (firmware comes with its own slice).
ACTIONS = ("counters", "supplies", "config-get", "config-set", "log", "restart")
# How long the manager waits for a job's result once it is sent, by action (default 60 s):
# a restart reports back only after the device and its agent's link are up again.
ANSWER_WITHIN_S = {"restart": 120}
OUTCOMES = ("done", "failed")
MAX_RESULT_BYTES = 64 * 1024   # a job's result (JSON), and so a log's tail
ERROR_CODES = ("unknown-action", "unknown-setting", "invalid-value", "device-busy",
               "device-error", "expired")


def parameters_error(action: str, key: str | None, value: str | None,
                     settings: dict[str, SettingSpec]) -> str | None:
    """Why a job's parameters are wrong for this device (``None``: they are right)."""
    if action not in ACTIONS:
        return f"unknown action {action!r}"
    if action in ("config-get", "config-set"):
        if key is None:
            return f"{action} needs a setting"
        if key not in settings:
            return f"the device has no setting {key!r}"
        if action == "config-set":
            if value is None:
                return "config-set needs a value"
            try:
                settings[key].check(value)
            except SettingError as e:
                return str(e)
        elif value is not None:
            return "config-get takes no value"
    elif key is not None or value is not None:
        return f"{action} takes no setting or value"
    return None


@dataclass(frozen=True)
class JobRequest:
    """Run job ``job_id``: ``action`` with its ``key`` and ``value`` (config), by
    ``deadline_us`` (after that the manager counts it timed out)."""

    job_id: str
    action: str
    deadline_us: int
    key: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class JobResult:
    """How job ``job_id`` went: ``done`` with ``result`` (JSON text), or ``failed`` with
    ``error_code`` (one of :data:`ERROR_CODES`) and ``error`` for people."""

    job_id: str
    outcome: str
    finished_us: int
    error_code: str | None = None
    error: str | None = None
    result: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if (self.outcome == "failed") != (self.error_code is not None):
            raise ValueError("a failed job has an error code, and only a failed one")
        if self.result is not None:
            if len(self.result.encode("utf-8")) > MAX_RESULT_BYTES:
                raise ValueError("the result is too large")
            json.loads(self.result)
