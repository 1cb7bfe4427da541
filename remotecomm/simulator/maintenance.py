"""The simulated MFP's side of maintenance jobs: it runs what its agent hands it.

:class:`JobRunner` asks the agent for waiting jobs (``GET /v1/jobs``) every
half second, runs each on the device's state -- counters, supplies, reading
and setting a setting (checked again here against the device's own specs),
its log, a restart (its apps answer 503 for a few seconds; its agent drops
its links) -- and reports the outcome (``POST /v1/jobs/{id}``).  A firmware
job is installed for real: the image the agent verified is read over the
panel channel into the device's firmware folder, its SHA-256 and size checked
again, progress reported, the version changed, and the device restarts.  A
:class:`Describer` tells the agent, at start and every few seconds, which
firmware runs and which settings exist.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

from twisted.logger import Logger

from remotecomm.simulator.agent_client import AgentChannelClient, AgentRefused, AgentUnavailable
from remotecomm.simulator.device_state import (SETTINGS, SETTINGS_VERSION, DeviceState, Firmware,
                                               StateError)
from remotecomm.simulator.firmware import IMAGE_NAME, MAX_FIRMWARE

log = Logger()

MAX_LOG_BYTES = 32 * 1024
RESTART_SECONDS = 3


def run_job(state: DeviceState, job: dict) -> dict:
    """One job's outcome, as the panel channel takes it."""
    action, key, value = job.get("action"), job.get("key"), job.get("value")
    try:
        if action == "counters":
            result = state.counter_report()
        elif action == "supplies":
            result = state.supplies_report()
        elif action == "config-get":
            if key not in state.settings:
                return {"outcome": "failed", "error_code": "unknown-setting",
                        "error": f"no setting {key!r}"}
            result = {key: state.settings[key]}
        elif action == "config-set":
            if key not in state.settings:
                return {"outcome": "failed", "error_code": "unknown-setting",
                        "error": f"no setting {key!r}"}
            previous = state.set_setting(key, value)
            result = {key: state.settings[key], "previous": previous}
        elif action == "restart":
            state.begin_restart()
            result = {"restarted": True, "down_seconds": RESTART_SECONDS}
        elif action == "log":
            lines, size = [], 0
            for line in reversed(state.log):
                size += len(line.encode("utf-8")) + 1
                if size > MAX_LOG_BYTES:
                    break
                lines.append(line)
            result = {"lines": list(reversed(lines))}
        else:
            return {"outcome": "failed", "error_code": "unknown-action",
                    "error": f"this device does not do {action!r}"}
    except StateError as e:
        return {"outcome": "failed", "error_code": "invalid-value", "error": str(e)}
    state.note(f"maintenance: {action}{' ' + key if key else ''}")
    return {"outcome": "done", "result": result}


async def install_firmware(state: DeviceState, agent: AgentChannelClient, job: dict,
                           folder: Path) -> dict:
    """Read a firmware job's image from the agent, check it, install it; the outcome."""
    image = job.get("image") or {}
    size, sha256, version = image.get("size"), image.get("sha256"), image.get("version")
    if not isinstance(size, int) or not 0 < size <= MAX_FIRMWARE or not sha256 or not version:
        return {"outcome": "failed", "error_code": "install-failed",
                "error": "the job does not describe its image"}
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "install.part"
    hasher, received, reported = hashlib.sha256(), 0, -1
    try:
        with open(partial, "wb") as file:
            def take(data: bytes) -> None:
                nonlocal received
                file.write(data)
                hasher.update(data)
                received += len(data)

            await agent.download(str(image.get("path")), take, size)
            for percent in (50, 90):  # writing the image to flash, as the panel shows it
                if percent > reported:
                    await agent.job_progress(job["job_id"], percent)
                    reported = percent
    except (AgentUnavailable, AgentRefused) as e:
        partial.unlink(missing_ok=True)
        return {"outcome": "failed", "error_code": "install-failed",
                "error": f"could not read the image: {e}"}
    if received != size or hasher.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        return {"outcome": "failed", "error_code": "checksum-mismatch",
                "error": "the image is not the one the job names; the old firmware stays"}
    os.replace(partial, folder / IMAGE_NAME)
    previous = state.firmware.version
    state.firmware = Firmware(version, size, sha256,
                              datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    state.note(f"firmware {previous} -> {version} installed")
    try:
        await agent.job_progress(job["job_id"], 100)
    except (AgentUnavailable, AgentRefused):
        pass  # progress is a courtesy; the outcome says it
    state.begin_restart()
    return {"outcome": "done", "result": {"version": version, "previous": previous,
                                          "size": size, "sha256": sha256,
                                          "down_seconds": RESTART_SECONDS}}


class JobRunner:
    """Takes waiting jobs from the agent and reports their outcomes."""

    def __init__(self, state: DeviceState, agent: AgentChannelClient, clock,
                 firmware_folder: Path | None = None, describer: "Describer | None" = None):
        self._state = state
        self._agent = agent
        self._clock = clock
        self._firmware_folder = firmware_folder
        self._describer = describer
        self._failing = False

    async def poll(self) -> int:
        """Run every waiting job once; how many."""
        try:
            waiting = await self._agent.jobs()
        except (AgentUnavailable, AgentRefused) as e:
            if not self._failing:
                log.info("the agent did not hand out jobs: {error}", error=str(e))
            self._failing = True
            return 0
        self._failing = False
        for job in waiting:
            if job.get("action") == "firmware" and self._firmware_folder is not None:
                outcome = await install_firmware(self._state, self._agent, job,
                                                 self._firmware_folder)
                if outcome["outcome"] == "done" and self._describer is not None:
                    await self._describer.tell()  # the new version, before the restart
            else:
                outcome = run_job(self._state, job)
            if self._state.restarting and job.get("action") in ("restart", "firmware"):
                self._clock.callLater(RESTART_SECONDS, self._state.end_restart)
            try:
                await self._agent.job_done(job["job_id"], outcome)
            except (AgentUnavailable, AgentRefused) as e:
                log.warn("could not report job {job_id}: {error}", job_id=job["job_id"],
                         error=str(e))
            else:
                log.info("job {job_id} ({action}): {outcome}", job_id=job["job_id"],
                         action=job.get("action"), outcome=outcome["outcome"])
        return len(waiting)


class Describer:
    """Tells the agent the installed firmware and the device's settings."""

    def __init__(self, state: DeviceState, agent: AgentChannelClient):
        self._state = state
        self._agent = agent
        self._told: str | None = None
        self._failing = False

    async def tell(self) -> None:
        """One description; a missing agent is logged once, then retried quietly."""
        try:
            await self._agent.describe_device(self._state.firmware.version,
                                              [spec.to_json() for spec in SETTINGS],
                                              SETTINGS_VERSION)
        except (AgentUnavailable, AgentRefused) as e:
            if not self._failing:
                log.info("the agent did not take the device's description: {error}",
                         error=str(e))
            self._failing = True
            return
        self._failing = False
        if self._told != self._state.firmware.version:
            self._told = self._state.firmware.version
            log.info("told the agent: firmware {version}, {count} settings",
                     version=self._told, count=len(SETTINGS))
