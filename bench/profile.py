"""``python -m bench.profile``: where our processes spend their time under one load.

Starts what scenario 3 uses (the shipped server with plain WebSockets, the
real ``twistd device-agent``, the simulated MFP, ``remotecomm open``), then
drives a load while ``py-spy`` samples every process at once, and prints each
process's functions by their own time (the top of the sampled stacks) and by
the time spent in them and what they call::

    scripts/bench --profile http-small     # wrk, 10 connections, the small page
    scripts/bench --profile http-64k       # wrk, 10 connections, the 64 KiB file
    scripts/bench --profile setup          # scenario 4's joins, 32 at once (the server only)

The profiles in ``docs/performance.md`` come from here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from bench import scenarios as sc
from bench.measure import timed_concurrently
from bench.system import BenchSystem
from remotecomm.testing.processes import free_port

LOADS = ("http-small", "http-64k", "setup")
PY_SPY = Path(sys.executable).parent / "py-spy"


def summarise(raw: str, top: int) -> list[str]:
    """Lines of one process's profile from py-spy's raw (collapsed) stacks: functions by
    own time, then by inclusive time."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples; own time:"]
    lines += [f"    {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)
              if n < total]
    return lines


def _short(frame: str) -> str:
    """``function (path/to/module.py:line)`` → ``function (package/module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "/remotecomm/", "/bench/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


class Sampler:
    """``py-spy record`` of several processes at once, for ``seconds``."""

    def __init__(self, folder: Path, pids: dict[str, int], seconds: float, idle: bool,
                 rate: int = 200):
        self.outputs = {name: folder / f"{name}.txt" for name in pids}
        self.processes = [subprocess.Popen(
            [str(PY_SPY), "record", "--format", "raw", "--rate", str(rate),
             "--duration", str(int(seconds)), "--nonblocking", "--pid", str(pid),
             *(["--idle"] if idle else []),
             "--output", str(self.outputs[name])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in pids.items()]

    def report(self, top: int) -> str:
        for process in self.processes:
            process.wait(timeout=60)
        lines = []
        for name, path in self.outputs.items():
            lines.append(f"{name}:")
            lines += summarise(path.read_text() if path.exists() else "", top)
        return "\n".join(lines)


async def profile(reactor, load: str, seconds: float, top: int, folder: Path,
                  idle: bool = False) -> str:
    app_ports = {"web-server": free_port(), "remote-panel": free_port()}
    setups = 300 if load == "setup" else 0
    # As the benchmark spreads scenario 4's sessions: 7 bench devices, 43 terminals.
    system = BenchSystem(reactor, folder / "system", tls=False,
                         devices=7 if setups else 1, terminals=43 if setups else 1,
                         real_device=None if setups else "mfp-real")
    try:
        await system.start({app: f"http://127.0.0.1:{port}" for app, port in app_ports.items()})
        if load == "setup":
            sessions = await system.prepare(setups)
            sampler = Sampler(folder, {"server": system.server_pid, "bench": os.getpid()},
                              seconds, idle)
            rate, _, _ = await timed_concurrently(
                len(sessions), 32, lambda i: system.join(
                    sessions[i], bind=(sc.ADDRESSES[i % 8], sc.ADDRESSES[(i + 4) % 8])))
            return f"setup: {rate:.0f} sessions/s while sampled\n{sampler.report(top)}"
        real = sc.RealSession(system, "mfp-real", app_ports)
        await real.start()
        await real.upload_firmware(64 * 1024)
        url, headers = real.wrk_target
        target = "/api/status" if load == "http-small" else "/firmware/image"
        sampler = Sampler(folder, {"server": system.server_pid, "agent": real.agent.pid,
                                   "cli": real.cli.pid, "simulator": real.simulator.pid},
                          seconds, idle)
        measured = await sc.wrk(reactor, url + target, 10, int(seconds), headers)
        report = sampler.report(top)
        await real.stop()
        return f"{load}: {measured['rate']:.0f} requests/s while sampled\n{report}"
    finally:
        await system.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench --profile",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("load", choices=LOADS)
    parser.add_argument("--seconds", type=float, default=8, help="how long to sample (8)")
    parser.add_argument("--top", type=int, default=15, help="functions per list (15)")
    parser.add_argument("--keep", metavar="DIR", help="also keep py-spy's raw stacks in DIR")
    parser.add_argument("--idle", action="store_true",
                        help="sample waiting threads too (where time goes when no process "
                             "is busy)")
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        parser.error(f"py-spy is missing ({PY_SPY}); scripts/bench --profile installs it")
    folder = Path(tempfile.mkdtemp(prefix="remotecomm-profile-"))

    async def go(reactor):
        try:
            print(await profile(reactor, args.load, args.seconds, args.top, folder,
                                args.idle))
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                for raw in folder.glob("*.txt"):
                    shutil.copy(raw, Path(args.keep) / raw.name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    react(lambda reactor: ensureDeferred(go(reactor)))


if __name__ == "__main__":
    main(sys.argv[1:])
