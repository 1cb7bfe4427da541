"""What the manager and a device say about maintenance jobs, free of any transport.

=====================  ================  ==========================================
message                direction         meaning
=====================  ================  ==========================================
:class:`JobRequest`    manager → device  run this job (re-sent by ID; run once)
:class:`JobProgress`   device → manager  how far a long job is (firmware: download,
                                         then install, in percent)
:class:`JobResult`     device → manager  how it went: ``done`` with a result, or
                                         ``failed`` with an error code
=====================  ================  ==========================================

A firmware job never carries the image: its request names a one-time,
short-lived HTTPS download reference on the manager (``image_url`` and
``image_token``, sent as ``Authorization: Bearer``) with the image's
SHA-256, size and version; the device downloads (resuming with ``Range``),
verifies, installs and restarts.

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

# What a job can ask for.
ACTIONS = ("counters", "supplies", "config-get", "config-set", "log", "restart", "firmware")
# How long the manager waits for a job's result once it is sent, by action (default 60 s):
# a restart reports back only after the device and its agent's link are up again; a
# firmware job downloads, installs and restarts (its download reference lives as long).
ANSWER_WITHIN_S = {"restart": 120, "firmware": 900}
OUTCOMES = ("done", "failed")
MAX_RESULT_BYTES = 64 * 1024   # a job's result (JSON), and so a log's tail
MAX_FIRMWARE_BYTES = 256 * 1024 * 1024
ERROR_CODES = ("unknown-action", "unknown-setting", "invalid-value", "device-busy",
               "device-error", "expired", "download-failed", "checksum-mismatch",
               "install-failed")
PROGRESS_PHASES = ("download", "install")


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
class FirmwareImage:
    """Where a device downloads a firmware image and what it must be: the one-time
    reference (``url`` and ``token``), SHA-256 (hex), size in bytes and version."""

    url: str
    token: str
    sha256: str
    size: int
    version: str


@dataclass(frozen=True)
class JobRequest:
    """Run job ``job_id``: ``action`` with its ``key`` and ``value`` (config) or its
    firmware image (``image_*``, for ``firmware``), by ``deadline_us`` (after that the
    manager counts it timed out)."""

    job_id: str
    action: str
    deadline_us: int
    key: str | None = None
    value: str | None = None
    image_url: str | None = None
    image_token: str | None = None
    image_sha256: str | None = None
    image_size: int | None = None
    image_version: str | None = None

    def __post_init__(self) -> None:
        given = [self.image_url, self.image_token, self.image_sha256, self.image_size,
                 self.image_version]
        if (self.action == "firmware") != all(value is not None for value in given) or (
                self.action != "firmware" and any(value is not None for value in given)):
            raise ValueError("a firmware job names its image completely, and only it does")
        if self.image_size is not None and not 0 < self.image_size <= MAX_FIRMWARE_BYTES:
            raise ValueError("the image size is out of range")

    @property
    def image(self) -> FirmwareImage | None:
        """The firmware image a ``firmware`` job installs."""
        if self.action != "firmware":
            return None
        return FirmwareImage(self.image_url, self.image_token, self.image_sha256,
                             self.image_size, self.image_version)


@dataclass(frozen=True)
class JobProgress:
    """How far job ``job_id`` is: ``percent`` (0–100) of its ``phase``
    (:data:`PROGRESS_PHASES`: a firmware image's download, then its install)."""

    job_id: str
    phase: str
    percent: int

    def __post_init__(self) -> None:
        if self.phase not in PROGRESS_PHASES:
            raise ValueError(f"unknown phase {self.phase!r}")
        if not 0 <= self.percent <= 100:
            raise ValueError("percent is 0 to 100")

    @property
    def rank(self) -> int:
        """Orders progress reports: a later phase, or more of the same, ranks higher."""
        return PROGRESS_PHASES.index(self.phase) * 101 + self.percent


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
