"""The demo (``scripts/demo``): the whole product on this machine, ready for a terminal.

It creates a fresh folder with a dev CA, a server config and a database;
provisions a unit, a technician, a device with its agent config and a
panel operator; starts Prosody, ``twistd remotecomm``, the device agent and
the simulated MFP on 127.0.0.1; prints what to type and open next; and
stops everything it started on Ctrl-C.  It drives the same harness the
end-to-end tests use (``remotecomm.testing.servers``), with the default
password-hash costs.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import sys
from pathlib import Path

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred

from remotecomm.testing.servers import ServerSetup

UNIT, USER, DEVICE = "demo", "tech", "mfp-0001"
USER_PASSWORD = "demo password 1"
OPERATOR, OPERATOR_PASSWORD = "operator", "operator password"
PORT_NAMES = ("https", "c2s", "component", "panel", "metrics", "web-server", "remote-panel")
START_TIMEOUT = 30


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
    venv = Path(sys.executable).parent
    return f"""
remotecomm demo is ready.

In another shell, as a technician:
    export REMOTECOMM_HOME={folder}/terminal
    export REMOTECOMM_SERVER=https://127.0.0.1:{ports['https']}
    export REMOTECOMM_CA={folder}/data/tls/ca.pem
    {venv}/remotecomm login --user {USER}          # password: {USER_PASSWORD}
    {venv}/remotecomm devices
    {venv}/remotecomm open {DEVICE} web-server      # waits for the operator

At the device, as its operator:
    open http://127.0.0.1:{ports['panel']}            # operator: {OPERATOR} / {OPERATOR_PASSWORD}
    log in and press YES (or NO)

Once approved, `open` prints a one-time "Browser:" link: open it to see the
device's own web pages through the session (or use the "Scripts:" address with
its header, e.g. with curl). `remotecomm open {DEVICE} remote-panel` mirrors the
device's touch screen instead.

Then `remotecomm close {DEVICE}` (or Ctrl-C on `open`) ends the session.
Metrics: http://127.0.0.1:{ports['metrics']}/metrics   Logs: {folder}/*.log (at stop)
Ctrl-C here stops everything.
"""


async def run(reactor, folder: Path, base_port: int) -> int:
    """Set up, start, wait for Ctrl-C, stop; the exit code."""
    ports = ports_from(base_port)
    busy = busy_ports(ports)
    if busy:
        print(f"demo: ports {', '.join(map(str, busy))} on 127.0.0.1 are in use; "
              f"choose another --base-port", file=sys.stderr)
        return 2
    if folder.exists():
        shutil.rmtree(folder)
    print(f"Setting up a fresh demo in {folder} …", flush=True)
    setup = ServerSetup(reactor, folder, ports=ports, cheap_hashing=False)
    stopping: Deferred = Deferred()

    def stop_on_signal(signum, frame):
        reactor.callFromThread(lambda: stopping.called or stopping.callback(signum))

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_on_signal)
    try:
        setup.provision({UNIT: {"users": [USER], "devices": [DEVICE]}}, password=USER_PASSWORD)
        setup.configure_agent(DEVICE, {
            "web-server": f"http://127.0.0.1:{ports['web-server']}",
            "remote-panel": f"http://127.0.0.1:{ports['remote-panel']}"})
        print("Starting Prosody and twistd remotecomm …", flush=True)
        await setup.start()
        print("Starting the device agent and the simulated MFP …", flush=True)
        agent = setup.start_agent(DEVICE)
        simulator, _ = setup.start_simulator(DEVICE, {OPERATOR: OPERATOR_PASSWORD},
                                             port=ports["panel"], app_ports={
                                                 "web-server": ports["web-server"],
                                                 "remote-panel": ports["remote-panel"]})
        await agent.wait_for_output("announced to", timeout=START_TIMEOUT)
        await simulator.wait_for_output("panel on", timeout=START_TIMEOUT)
        print(instructions(folder, ports), flush=True)
        children = [setup.server, agent, simulator]
        ended = DeferredList([c.ended() for c in children], fireOnOneCallback=True)
        await DeferredList([stopping, ended], fireOnOneCallback=True)
        if not stopping.called:
            gone = next(c for c in children if c.exit_code is not None)
            print(f"demo: {gone.plugin} stopped unexpectedly (exit {gone.exit_code}):\n"
                  f"{gone.output[-2000:]}", file=sys.stderr, flush=True)
            code = 1
        else:
            code = 0
    except Exception as e:
        print(f"demo: could not start: {e}", file=sys.stderr, flush=True)
        code = 1
    print("Stopping everything …", flush=True)
    await setup.stop()
    print("Stopped.", flush=True)
    return code


def main(argv: list[str] | None = None) -> None:
    """``python -m remotecomm.demo [--dir DIR] [--base-port PORT]``."""
    parser = argparse.ArgumentParser(prog="scripts/demo",
                                     description="Run the whole product on this machine.")
    parser.add_argument("--dir", default="demo-data",
                        help="the demo's folder, recreated at every start (default demo-data)")
    parser.add_argument("--base-port", type=int, default=18443,
                        help="first of seven ports on 127.0.0.1 (default 18443)")
    args = parser.parse_args(argv)
    if not 1024 <= args.base_port <= 65535 - len(PORT_NAMES):
        parser.error("--base-port must be between 1024 and 65528")
    from twisted.internet import reactor

    outcome = {}

    def start():
        d = ensureDeferred(run(reactor, Path(args.dir).absolute(), args.base_port))
        d.addBoth(lambda result: (outcome.setdefault("code", result), reactor.stop()))

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=True)  # SIGCHLD: the children must be reaped
    code = outcome.get("code", 1)
    raise SystemExit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
