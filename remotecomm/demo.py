"""The demo (``scripts/demo``): the whole product on this machine, ready for a terminal.

The first time (or with ``--fresh``) it creates its folder with a dev CA, a
server config and a database, and provisions a unit, a technician, a device
with its agent config and a panel operator; later runs keep all of it --
the database, the technician's login.  It starts Prosody, ``twistd
remotecomm``, the device agent and the simulated MFP on 127.0.0.1, each
writing its log to ``DIR/*.log`` as it runs; prints what to type and open
next; and stops everything it started on Ctrl-C.

One rule for every child: when one dies, the demo says which, with the last
lines of its log, and starts it again after 1, 2, 4 … seconds; one that
dies five times within a minute stops the demo.  It drives the same harness
the end-to-end tests use (``remotecomm.testing.servers``), with the default
password-hash costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred

from remotecomm.testing.processes import sleep
from remotecomm.testing.servers import ServerSetup

UNIT, USER, DEVICE = "demo", "tech", "mfp-0001"
USER_PASSWORD = "demo password 1"
OPERATOR, OPERATOR_PASSWORD = "operator", "operator password"
PORT_NAMES = ("https", "c2s", "component", "panel", "metrics", "web-server", "remote-panel")
START_TIMEOUT = 30
MAX_RESTARTS = 5          # deaths of one child within RESTART_WINDOW before the demo stops
RESTART_WINDOW = 60.0
LAST_LINES = 12


def ports_from(base: int) -> dict[str, int]:
    """The demo's ports: ``base`` and the six after it."""
    return {name: base + offset for offset, name in enumerate(PORT_NAMES)}


def busy_ports(ports: dict[str, int]) -> list[int]:
    """Those of ``ports`` that something on 127.0.0.1 already listens on (or cannot be bound)."""
    busy = []
    for port in ports.values():
        with socket.socket() as s:
            # As Twisted listens: ports holding only TIME_WAIT connections are free.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def instructions(folder: Path, ports: dict[str, int]) -> str:
    """What to type and open next."""
    command = Path(__file__).resolve().parent.parent / "scripts" / "remotecomm"
    return f"""
remotecomm demo is ready.

In another shell, as a technician (scripts/remotecomm is the CLI in .venv):
    export REMOTECOMM_HOME={folder}/terminal
    export REMOTECOMM_SERVER=https://127.0.0.1:{ports['https']}
    export REMOTECOMM_CA={folder}/data/tls/ca.pem
    {command} login --user {USER}          # password: {USER_PASSWORD}
    {command} devices
    {command} open {DEVICE} web-server      # waits for the operator

At the device, as its operator:
    open http://127.0.0.1:{ports['panel']}            # operator: {OPERATOR} / {OPERATOR_PASSWORD}
    log in and press YES (or NO)

Once approved, `open` prints a one-time "Browser:" link: open it to see the
device's own web pages through the session (or use the "Scripts:" address with
its header, e.g. with curl). `remotecomm open {DEVICE} remote-panel` mirrors the
device's touch screen instead.

Then `remotecomm close {DEVICE}` (or Ctrl-C on `open`) ends the session.
Portal (the web UI): https://127.0.0.1:{ports['https']}/portal/   # {USER} / {USER_PASSWORD}
  (the browser must trust {folder}/data/tls/ca.pem, the demo's own CA)
Metrics: http://127.0.0.1:{ports['metrics']}/metrics
Logs, as they are written:  tail -f {folder}/*.log
Ctrl-C here stops everything (the folder stays: `scripts/demo --fresh` starts over).
"""


def last_lines(text: str, count: int = LAST_LINES) -> str:
    """The last ``count`` whole lines of ``text``."""
    lines = text.rstrip("\n").splitlines()
    return "\n".join("    " + line for line in lines[-count:])


class Supervisor:
    """Starts each child again when it dies (after 1, 2, 4 … s); too many deaths of one
    within a minute stop the demo (``gave_up`` fires with the child's name)."""

    def __init__(self, reactor):
        self._reactor = reactor
        self._deaths: dict[str, list[float]] = {}
        self.gave_up: Deferred = Deferred()
        self.stopping = False

    def watch(self, name: str, process, ended, restart) -> None:
        """Watch ``process`` (``ended()`` fires when it exits); ``restart()`` makes a new
        one (async)."""
        ended().addCallback(lambda _: ensureDeferred(self._died(name, process, restart)))

    async def _died(self, name: str, process, restart) -> None:
        if self.stopping or self.gave_up.called:
            return
        now = self._reactor.seconds()
        deaths = [t for t in self._deaths.get(name, []) if t > now - RESTART_WINDOW] + [now]
        self._deaths[name] = deaths
        output = process.output if isinstance(process.output, str) else \
            bytes(process.output).decode("utf-8", "replace")
        code = getattr(process, "exit_code", None)
        print(f"demo: {name} stopped" + (f" (exit {code})" if code is not None else "")
              + f"; its last lines:\n{last_lines(output)}", file=sys.stderr, flush=True)
        if len(deaths) >= MAX_RESTARTS:
            print(f"demo: {name} died {len(deaths)} times within a minute; stopping",
                  file=sys.stderr, flush=True)
            self.gave_up.callback(name)
            return
        delay = 2 ** (len(deaths) - 1)
        print(f"demo: starting {name} again in {delay} s", file=sys.stderr, flush=True)
        await sleep(self._reactor, delay)
        if self.stopping or self.gave_up.called:
            return
        try:
            await restart()
        except Exception as e:
            print(f"demo: {name} did not start again: {e}", file=sys.stderr, flush=True)
            self.gave_up.callback(name)
            return
        print(f"demo: {name} is back", file=sys.stderr, flush=True)


def provisioned(folder: Path, base_port: int) -> bool:
    """Whether ``folder`` holds a demo made for these ports (kept between runs)."""
    marker = folder / "demo.json"
    try:
        return json.loads(marker.read_text()).get("base_port") == base_port and \
            (folder / "data" / "manager.sqlite3").exists()
    except (OSError, ValueError):
        return False


async def run(reactor, folder: Path, base_port: int, fresh: bool = False) -> int:
    """Set up (or reuse), start, supervise, wait for Ctrl-C, stop; the exit code."""
    ports = ports_from(base_port)
    busy = busy_ports(ports)
    if busy:
        print(f"demo: ports {', '.join(map(str, busy))} on 127.0.0.1 are in use; "
              f"choose another --base-port", file=sys.stderr)
        return 2
    keep = not fresh and provisioned(folder, base_port)
    if not keep and folder.exists():
        if not fresh and (folder / "demo.json").exists():
            print(f"demo: {folder} was made for other ports; starting it over",
                  flush=True)
        shutil.rmtree(folder)
    print(f"Using the demo in {folder} (kept from last time) …" if keep
          else f"Setting up a fresh demo in {folder} …", flush=True)
    setup = ServerSetup(reactor, folder, ports=ports, cheap_hashing=False)
    stopping: Deferred = Deferred()
    supervisor = Supervisor(reactor)

    def stop_on_signal(signum, frame):
        reactor.callFromThread(lambda: stopping.called or stopping.callback(signum))

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_on_signal)
    try:
        if not keep:
            setup.provision({UNIT: {"users": [USER], "devices": [DEVICE]}},
                            password=USER_PASSWORD)
            setup.configure_agent(DEVICE, {
                "web-server": f"http://127.0.0.1:{ports['web-server']}",
                "remote-panel": f"http://127.0.0.1:{ports['remote-panel']}"})
            (folder / "demo.json").write_text(json.dumps({"base_port": base_port}) + "\n")
        print("Starting Prosody and twistd remotecomm …", flush=True)
        await setup.start()

        def start_simulator():
            simulator, _ = setup.start_simulator(
                DEVICE, {OPERATOR: OPERATOR_PASSWORD}, port=ports["panel"],
                app_ports={"web-server": ports["web-server"],
                           "remote-panel": ports["remote-panel"]})
            return simulator

        print("Starting the device agent and the simulated MFP …", flush=True)
        agent = setup.start_agent(DEVICE)
        simulator = start_simulator()
        await agent.wait_for_output("announced to", timeout=START_TIMEOUT)
        await simulator.wait_for_output("panel on", timeout=START_TIMEOUT)

        async def restart_prosody():
            setup.prosody = None
            await setup.start_prosody()
            watch_prosody()

        async def restart_server():
            await setup.start()
            supervisor.watch("twistd remotecomm", setup.server, setup.server.ended,
                             restart_server)

        async def restart_agent():
            process = setup.start_agent(DEVICE)
            supervisor.watch("device agent", process, process.ended, restart_agent)

        async def restart_simulator():
            process = start_simulator()
            supervisor.watch("simulated MFP", process, process.ended, restart_simulator)

        def watch_prosody():
            supervisor.watch("prosody", setup.prosody, setup.prosody.ended, restart_prosody)

        watch_prosody()
        supervisor.watch("twistd remotecomm", setup.server, setup.server.ended,
                         restart_server)
        supervisor.watch("device agent", agent, agent.ended, restart_agent)
        supervisor.watch("simulated MFP", simulator, simulator.ended, restart_simulator)
        print(instructions(folder, ports), flush=True)
        await DeferredList([stopping, supervisor.gave_up], fireOnOneCallback=True)
        code = 0 if stopping.called else 1
    except Exception as e:
        print(f"demo: could not start: {e}", file=sys.stderr, flush=True)
        code = 1
    supervisor.stopping = True
    print("Stopping everything …", flush=True)
    await setup.stop()
    print("Stopped.", flush=True)
    return code


def main(argv: list[str] | None = None) -> None:
    """``python -m remotecomm.demo [--dir DIR] [--base-port PORT]``."""
    parser = argparse.ArgumentParser(prog="scripts/demo",
                                     description="Run the whole product on this machine.")
    parser.add_argument("--dir", default=os.environ.get("REMOTECOMM_DEMO_DIR", "demo-data"),
                        help="the demo's folder, kept between runs (default demo-data, or "
                             "REMOTECOMM_DEMO_DIR)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over: remove the folder (database, logins) first")
    parser.add_argument("--base-port", type=int,
                        default=int(os.environ.get("REMOTECOMM_DEMO_BASE_PORT", "18443")),
                        help="first of seven ports on 127.0.0.1 (default 18443, or "
                             "REMOTECOMM_DEMO_BASE_PORT)")
    args = parser.parse_args(argv)
    if not 1024 <= args.base_port <= 65535 - len(PORT_NAMES):
        parser.error("--base-port must be between 1024 and 65528")
    from twisted.internet import reactor

    outcome = {}

    def start():
        d = ensureDeferred(run(reactor, Path(args.dir).absolute(), args.base_port,
                               args.fresh))
        d.addBoth(lambda result: (outcome.setdefault("code", result), reactor.stop()))

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=True)  # SIGCHLD: the children must be reaped
    code = outcome.get("code", 1)
    raise SystemExit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
