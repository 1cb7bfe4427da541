"""``remotecomm maintain`` and ``remotecomm jobs``: maintenance without a session (S121–S125).

``remotecomm maintain DEVICE counters|supplies|config get KEY|config set KEY
VALUE|log|restart|firmware FILE --version V`` asks the manager for a job, waits for
its outcome (polling the job, bounded; ``--wait-online`` lets a job wait for an
offline device) and prints it; ``--json`` prints the job as the API answers it.
``firmware`` first uploads the image (streamed, with a progress bar: percent
and rate), then shows the device's download and install progress.  Ctrl-C leaves a
job where it is (queued jobs can be withdrawn with ``remotecomm jobs
--cancel JOB``).  ``remotecomm jobs [DEVICE]`` lists the unit's jobs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from twisted.internet.task import deferLater

from remotecomm.command_line import (EXIT_DEVICE_NOT_FOUND, EXIT_DEVICE_OFFLINE, EXIT_USAGE,
                                     CliError, identifier, table)
from remotecomm.identifiers import DEVICE_ID, JOB_ID, VERSION_TEXT
from remotecomm.messages import text
from remotecomm.terminal.progress import ProgressBar

POLL_EVERY = 0.5
ANSWER_WAIT = 15.0  # past the manager's own deadline for the job; this only bounds the poll
UPLOAD_BYTES_PER_SECOND = 100_000  # the slowest upload we wait for
# The manager's rules, as its API documents them (this command imports no manager code):
# how long it waits for a job's result by action, and the largest image it takes.
ANSWER_WITHIN_S = {"restart": 120, "firmware": 900}
MAX_FIRMWARE_BYTES = 256 * 1024 * 1024
FINAL = ("done", "failed", "timed-out", "cancelled")
_REFUSALS = {"device-not-found": EXIT_DEVICE_NOT_FOUND, "device-offline": EXIT_DEVICE_OFFLINE}


def add_parsers(commands) -> None:
    """``maintain`` and ``jobs`` on the command's sub-parsers."""
    maintain = commands.add_parser(
        "maintain", help="ask a device for counters, supplies, a setting, its log")
    maintain.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    maintain.add_argument("what", nargs="+", metavar="ACTION",
                          help="counters | supplies | config get KEY | config set KEY VALUE | "
                               "log | restart | firmware FILE")
    maintain.add_argument("--version", dest="image_version", type=_version, metavar="VERSION",
                          help="firmware: the version the image installs (e.g. 4.3.0)")
    maintain.add_argument("--wait-online", nargs="?", const=86400, type=_seconds,
                          metavar="SECONDS", help="if the device is offline, let the job wait "
                                                  "for it (default 24 h)")
    maintain.add_argument("--json", action="store_true", help="print the job as JSON")
    jobs = commands.add_parser("jobs", help="your unit's maintenance jobs")
    jobs.add_argument("device_id", nargs="?", type=identifier(DEVICE_ID, "device ID"))
    jobs.add_argument("--cancel", metavar="JOB", type=identifier(JOB_ID, "job ID"),
                      help="withdraw a job that is still queued")
    jobs.add_argument("--json", action="store_true", help="print the answer as JSON")


def _seconds(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 86400:
        raise argparse.ArgumentTypeError("seconds from 1 to 86400")
    return int(value)


def _version(value: str) -> str:
    if not re.fullmatch(VERSION_TEXT, value):
        raise argparse.ArgumentTypeError("letters, digits and . + ~ _ - (at most 32)")
    return value


def job_body(what: list[str]) -> dict:
    """The job the words ask for; a :class:`CliError` (usage) for words that ask for none."""
    if what in (["counters"], ["supplies"], ["log"], ["restart"]):
        return {"action": what[0]}
    if len(what) == 3 and what[:2] == ["config", "get"]:
        return {"action": "config-get", "key": what[2]}
    if len(what) == 4 and what[:2] == ["config", "set"]:
        return {"action": "config-set", "key": what[2], "value": what[3]}
    if len(what) == 2 and what[0] == "firmware":
        return {"action": "firmware", "file": what[1]}
    raise CliError(text("maintain-usage"), EXIT_USAGE)


async def upload_image(client, source: Path, version: str, progress: ProgressBar) -> dict:
    """Upload a firmware image with a progress bar; the image as the manager keeps it."""
    try:
        size = source.stat().st_size
    except OSError as e:
        raise CliError(text("cannot-read", path=source, reason=e.strerror or str(e)),
                       EXIT_USAGE) from None
    if not 0 < size <= MAX_FIRMWARE_BYTES:
        raise CliError(text("firmware-too-large", path=source, size=size,
                            limit=MAX_FIRMWARE_BYTES), EXIT_USAGE)
    try:
        image = await client.upload(f"/api/v1/firmware?version={version}", source,
                                    lambda sent: progress.update(sent * 100 // size, sent),
                                    timeout=60 + size / UPLOAD_BYTES_PER_SECOND)
    finally:
        progress.close()
    return image


def _show_progress(job: dict, progress: ProgressBar) -> None:
    phase = (job.get("progress") or {}).get("phase")
    if phase is None:
        return
    label = {"download": "device downloading", "install": "device installing"}.get(phase, phase)
    if progress._label != label:
        progress.relabel(label)
    progress.update(int((job.get("progress") or {}).get("percent") or 0))


async def maintain(reactor, client, args) -> list[str]:
    """Create the job, wait for its outcome, show it."""
    body = job_body(args.what)
    lines: list[str] = []
    progress = ProgressBar(sys.stderr, "uploading")
    if body["action"] == "firmware":
        if not args.image_version:
            raise CliError(text("firmware-needs-version"), EXIT_USAGE)
        source = Path(body.pop("file"))
        image = await upload_image(client, source, args.image_version, progress)
        lines.append(text("firmware-uploaded", path=source, version=image.get("version"),
                          image_id=image.get("image_id"), sha256=image.get("sha256")))
        if not args.json:
            print(lines.pop(), flush=True)
        body["image_id"] = image.get("image_id")
    if args.wait_online:
        body["wait_online"] = args.wait_online
    try:
        job = await client.post(f"/api/v1/devices/{args.device_id}/jobs", body)
    except CliError as e:
        if e.code in _REFUSALS:
            raise CliError(e.message, _REFUSALS[e.code], code=e.code) from None
        raise
    job_id = str(job.get("job_id", ""))
    waited = 0.0
    limit = ANSWER_WAIT + ANSWER_WITHIN_S.get(body["action"], 60) + (args.wait_online or 0)
    told_waiting = False
    try:
        while job.get("state") not in FINAL:
            if job.get("state") == "queued" and not told_waiting:
                print(text("job-waiting", device_id=args.device_id, job_id=job_id), flush=True)
                told_waiting = True
            _show_progress(job, progress)
            if waited >= limit:
                raise CliError(text("job-no-outcome", job_id=job_id))
            await deferLater(reactor, POLL_EVERY, lambda: None)
            waited += POLL_EVERY
            job = await client.get(f"/api/v1/jobs/{job_id}")
    finally:
        progress.close()
    if args.json:
        return [json.dumps(job, indent=2)]
    if job.get("state") != "done":
        raise CliError(text("job-failed", job_id=job_id, state=job.get("state"),
                            code=job.get("error_code") or "?",
                            error=job.get("error") or ""))
    return format_result(str(job.get("action")), job.get("result") or {})


def format_result(action: str, result: dict) -> list[str]:
    """A job's result as lines (what the device says is shown as text, never run)."""
    if action == "counters":
        rows = [("COUNTER", "TOTAL", "MONO", "COLOUR")]
        for name, counts in result.items():
            counts = counts if isinstance(counts, dict) else {}
            rows.append((str(name), str(counts.get("total", "")), str(counts.get("mono", "")),
                         str(counts.get("colour", ""))))
        return table(rows)
    if action == "supplies":
        toner = result.get("toner") or {}
        lines = ["Toner: " + ", ".join(f"{colour} {level}%" for colour, level in toner.items())]
        paper = result.get("paper") or {}
        lines.append("Paper: " + ", ".join(f"{tray} {state}" for tray, state in paper.items()))
        lines.append(f"Status: {result.get('status')}"
                     + (f" ({result['error']})" if result.get("error") else ""))
        return lines
    if action == "log":
        return [str(line) for line in result.get("lines") or []]
    if action == "restart":
        return [text("restarted", seconds=result.get("down_seconds", "?"))]
    if action == "firmware":
        return [text("firmware-installed", version=result.get("version", "?"),
                     previous=result.get("previous", "?"))]
    return [f"{key} = {value}" for key, value in result.items() if key != "previous"] + (
        [f"(was {result['previous']})"] if "previous" in result else [])


async def jobs(client, args) -> list[str]:
    """List the unit's (or a device's) jobs, or withdraw one."""
    if args.cancel:
        job = await client.delete(f"/api/v1/jobs/{args.cancel}")
        return [text("job-cancelled", job_id=job.get("job_id"))]
    path = f"/api/v1/devices/{args.device_id}/jobs" if args.device_id else "/api/v1/jobs"
    answer = await client.get(path)
    if args.json:
        return [json.dumps(answer, indent=2)]
    found = answer.get("jobs") or []
    if not found:
        return [text("no-jobs", unit_id=answer.get("unit_id", "?"))]
    rows = [("JOB", "CREATED (UTC)", "DEVICE", "ACTION", "STATE", "BY")]
    for job in found:
        action = str(job.get("action", "?")) + (f" {job['key']}" if job.get("key") else "")
        state = str(job.get("state", "?")) + (f" ({job['error_code']})"
                                              if job.get("error_code") else "")
        rows.append((str(job.get("job_id", "?")),
                     str(job.get("created_at", "")).replace("T", " ").rstrip("Z"),
                     str(job.get("device_id", "")), action, state, str(job.get("user_id", ""))))
    return table(rows)
