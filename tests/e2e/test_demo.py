"""End to end: the demo command starts everything, a session works, Ctrl-C stops it all."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm import demo
from remotecomm.testing.http import LocalPortClient
from remotecomm.testing.panel import PanelUser
from remotecomm.testing.processes import ChildProcess, run_command


def free_base_port() -> int:
    """A port with the six after it free on 127.0.0.1."""
    for _ in range(50):
        base = random.randint(20000, 60000)
        if not demo.busy_ports(demo.ports_from(base)):
            return base
    raise AssertionError("no free port range found")


class DemoTests(TestCase):
    """`scripts/demo` as a newcomer runs it (minus the install steps, done by the suite)."""

    timeout = 30

    async def test_demo_runs_a_session_and_stops_everything(self):
        folder = Path(self.mktemp()).absolute()
        base = free_base_port()
        ports = demo.ports_from(base)
        process = ChildProcess(reactor, [sys.executable, "-m", "remotecomm.demo", "--dir",
                                         str(folder), "--base-port", str(base)],
                               cwd=Path.cwd(), name="demo")
        self.addCleanup(process.stop)
        await process.wait_for_output("remotecomm demo is ready.", timeout=20)
        self.assertIn(f"tail -f {folder}/*.log", process.output)
        self.assertIn("serving tcp:", (folder / "server.log").read_text())  # as it runs
        env = {"REMOTECOMM_HOME": str(folder / "terminal"),
               "REMOTECOMM_SERVER": f"https://127.0.0.1:{ports['https']}",
               "REMOTECOMM_CA": str(folder / "data" / "tls" / "ca.pem")}
        self.assertIn(f"REMOTECOMM_SERVER={env['REMOTECOMM_SERVER']}", process.output)
        code, output = await run_command(reactor, ["remotecomm", "login", "--user", demo.USER,
                                                   "--password-stdin"], env=env,
                                         stdin=demo.USER_PASSWORD.encode() + b"\n")
        self.assertEqual(code, 0, output)
        opening = ChildProcess(reactor, ["remotecomm", "open", demo.DEVICE, "web-server"],
                               cwd=folder, env=env)
        self.addCleanup(opening.stop)
        panel = PanelUser(reactor, f"http://127.0.0.1:{ports['panel']}")
        self.assertEqual(await panel.login(demo.OPERATOR, demo.OPERATOR_PASSWORD), 303)
        await panel.answer(await panel.wait_for_request(), "yes")
        await opening.wait_for_output("Scripts: ")
        marker = folder / "terminal" / "sessions" / f"{demo.DEVICE}.json"
        response = await LocalPortClient(reactor, json.loads(marker.read_text())).request(
            "GET", "/api/status")
        self.assertEqual(response.code, 200)
        self.assertEqual((await response.json())["status"], "ready")
        code, output = await run_command(reactor, ["remotecomm", "close", demo.DEVICE], env=env)
        self.assertEqual(code, 0, output)
        self.assertEqual(await opening.ended(), 0)

        start = reactor.seconds()
        process.signal("INT")
        self.assertEqual(await process.ended(), 0, process.output)
        self.assertLess(reactor.seconds() - start, 15)
        self.assertIn("Stopped.", process.output)
        left = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True)
        self.assertEqual(left.stdout.strip(), "", "processes left running")
        self.assertEqual(demo.busy_ports(ports), [])

    async def test_a_dead_child_comes_back_and_the_folder_is_kept(self):
        """One rule for every child: reported with its last lines, started again.  The next
        run keeps the folder (the technician stays logged in) unless --fresh."""
        folder = Path(self.mktemp()).absolute()
        base = free_base_port()
        argv = [sys.executable, "-m", "remotecomm.demo", "--dir", str(folder), "--base-port",
                str(base)]
        process = ChildProcess(reactor, argv, cwd=Path.cwd(), name="demo")
        self.addCleanup(process.stop)
        await process.wait_for_output("remotecomm demo is ready.", timeout=20)
        self.assertIn("Setting up a fresh demo", process.output)
        agent = subprocess.run(["pgrep", "-f", f"{folder}/data/devices/.*device-agent.toml"],
                               capture_output=True, text=True).stdout.split()
        self.assertEqual(len(agent), 1, agent)
        os.kill(int(agent[0]), signal.SIGKILL)
        await process.wait_for_output("demo: device agent stopped", timeout=5)
        await process.wait_for_output("demo: device agent is back", timeout=5)
        self.assertIn("its last lines:\n    20", process.output)  # whole lines, timestamps
        process.signal("INT")
        self.assertEqual(await process.ended(), 0, process.output)

        again = ChildProcess(reactor, argv, cwd=Path.cwd(), name="demo-again")
        self.addCleanup(again.stop)
        await again.wait_for_output("remotecomm demo is ready.", timeout=20)
        self.assertIn("kept from last time", again.output)
        again.signal("INT")
        self.assertEqual(await again.ended(), 0, again.output)

    def test_busy_ports_are_refused(self):
        """A port already in use is reported instead of half-starting."""
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            self.assertEqual(demo.busy_ports({"https": port}), [port])
