"""``remotecomm maintain`` and ``remotecomm jobs``: maintenance without a session (S121–S125).

``remotecomm maintain DEVICE counters|supplies|config get KEY|config set KEY
VALUE|log|restart`` asks the manager for a job, waits for its outcome (polling the
job, bounded; ``--wait-online`` lets a job wait for an offline device) and
prints it; ``--json`` prints the job as the API answers it.  Ctrl-C leaves a
job where it is (queued jobs can be withdrawn with ``remotecomm jobs
--cancel JOB``).  ``remotecomm jobs [DEVICE]`` lists the unit's jobs.
"""

from __future__ import annotations

import argparse
import json

from twisted.internet.task import deferLater

from remotecomm.command_line import (EXIT_DEVICE_NOT_FOUND, EXIT_DEVICE_OFFLINE, EXIT_USAGE,
                                     CliError, identifier, table)
from remotecomm.identifiers import DEVICE_ID, JOB_ID
from remotecomm.messages import text

POLL_EVERY = 0.5
ANSWER_WAIT = 75.0  # the manager times a job out after 60 s; this only bounds the poll
FINAL = ("done", "failed", "timed-out", "cancelled")
_REFUSALS = {"device-not-found": EXIT_DEVICE_NOT_FOUND, "device-offline": EXIT_DEVICE_OFFLINE}


def add_parsers(commands) -> None:
    """``maintain`` and ``jobs`` on the command's sub-parsers."""
    maintain = commands.add_parser(
        "maintain", help="ask a device for counters, supplies, a setting, its log")
    maintain.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    maintain.add_argument("what", nargs="+", metavar="ACTION",
                          help="counters | supplies | config get KEY | config set KEY VALUE | "
                               "log | restart")
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


def job_body(what: list[str]) -> dict:
    """The job the words ask for; a :class:`CliError` (usage) for words that ask for none."""
    if what in (["counters"], ["supplies"], ["log"], ["restart"]):
        return {"action": what[0]}
    if len(what) == 3 and what[:2] == ["config", "get"]:
        return {"action": "config-get", "key": what[2]}
    if len(what) == 4 and what[:2] == ["config", "set"]:
        return {"action": "config-set", "key": what[2], "value": what[3]}
    raise CliError(text("maintain-usage"), EXIT_USAGE)


async def maintain(reactor, client, args) -> list[str]:
    """Create the job, wait for its outcome, show it."""
    body = job_body(args.what)
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
    limit = ANSWER_WAIT + (args.wait_online or 0)
    told_waiting = False
    while job.get("state") not in FINAL:
        if job.get("state") == "queued" and not told_waiting:
            print(text("job-waiting", device_id=args.device_id, job_id=job_id), flush=True)
            told_waiting = True
        if waited >= limit:
            raise CliError(text("job-no-outcome", job_id=job_id))
        await deferLater(reactor, POLL_EVERY, lambda: None)
        waited += POLL_EVERY
        job = await client.get(f"/api/v1/jobs/{job_id}")
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
