"""The technician's command starts without any server code or server dependency.

A technician's laptop installs ``remotecomm`` without extras.  These tests run
the real command in a child Python with SQLAlchemy, alembic, argon2 and wokkel
made impossible to import (as on such a laptop), under ``-X importtime``, and
read which modules it loaded.  (autobahn tries ``argon2`` for WAMP and copes
without it; tests/test_layers.py makes sure no module of ours asks for any of
them.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from remotecomm.testing.processes import run_command

SERVER_ONLY = ("sqlalchemy", "alembic", "argon2", "wokkel")
MANAGER_PACKAGES = ("remotecomm.store", "remotecomm.accounts", "remotecomm.server",
                    "remotecomm.admin", "remotecomm.sessions", "remotecomm.xmpp",
                    "remotecomm.web", "remotecomm.relay.core", "remotecomm.relay.logs")

_LAPTOP = f"""
import importlib.abc, runpy, sys
BLOCKED = {SERVER_ONLY!r}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
import atexit, json
report = sys.argv[1]
atexit.register(lambda: open(report, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["remotecomm", *sys.argv[2:]]
runpy.run_module("remotecomm", run_name="__main__")
"""


def run_on_a_laptop(*args: str, report: str = "/dev/null") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", "-c", _LAPTOP, report, *args],
                          capture_output=True, text=True, timeout=60)


def imported_modules(stderr: str) -> set[str]:
    """Every module ``-X importtime`` reports."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


class StartupTests(SynchronousTestCase):
    """What ``remotecomm`` loads when it starts."""

    def test_the_command_starts_without_server_dependencies(self):
        """`remotecomm --help` and `remotecomm open --help` work with them missing."""
        for args in (["--help"], ["open", "--help"], ["login", "--help"]):
            result = run_on_a_laptop(*args)
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            self.assertIn("usage: remotecomm", result.stdout)

    def test_no_server_code_is_imported(self):
        """Neither the server's packages nor its libraries are loaded."""
        report = self.mktemp()
        result = run_on_a_laptop("--help", report=report)
        self.assertIn("remotecomm.terminal.main", imported_modules(result.stderr))
        with open(report) as f:
            modules = json.load(f)
        self.assertIn("remotecomm.terminal.main", modules)  # the reading works
        self.assertEqual(sorted(m for m in modules
                                if m.split(".")[0] in SERVER_ONLY
                                or any(m == p or m.startswith(p + ".")
                                       for p in MANAGER_PACKAGES)), [])

    def test_admin_without_the_server_extra_says_what_to_install(self):
        """`remotecomm admin …` on a laptop: one line naming remotecomm[server], exit 2."""
        result = run_on_a_laptop("admin", "--config", "x.toml", "init")
        self.assertEqual(result.returncode, 2)
        message = [line for line in result.stderr.splitlines()
                   if not line.startswith("import time:")]
        self.assertEqual(len(message), 1, message)
        self.assertIn("remotecomm[server]", message[0])


class CompletionTests(TestCase):
    """Bash completion through argcomplete: `eval "$(register-python-argcomplete remotecomm)"`
    once, then Tab completes commands and options."""

    timeout = 20

    async def test_tab_completes_commands_and_options(self):
        answers = Path(self.mktemp())
        for line, expected in (("remotecomm mai", "maintain"),
                               ("remotecomm admin user-d", "user-disable"),
                               ("remotecomm devices --j", "--json")):
            code, output = await run_command(reactor, ["remotecomm"], env={
                "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
                "_ARGCOMPLETE_STDOUT_FILENAME": str(answers)})
            self.assertEqual(code, 0, output)
            self.assertIn(expected, answers.read_text().split(), line)
