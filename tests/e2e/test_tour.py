"""End to end: the README's tour, exactly as written.

The tour's commands stand in tagged literal blocks of README.rst (``.. tour:
NAME``); this test reads them from there (no copies), runs each with bash
from the checkout's folder as a newcomer would -- ``scripts/demo`` in the
background (on free ports and in a test folder, through its environment
variables), the three variables the demo prints, ``open`` in the background
-- and does the panel and browser steps in headless Chromium.  A README
change that breaks the tour fails the suite.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from remotecomm import demo
from remotecomm.testing.browser import Browser
from remotecomm.testing.processes import ChildProcess, run_command, sleep
from tests.e2e.test_demo import free_base_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.rst"


def tour_blocks(text: str) -> dict[str, list[str]]:
    """The commands of each ``.. tour: NAME`` literal block, by name, in order."""
    lines = text.splitlines()
    blocks: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        tag = re.fullmatch(r"\s*\.\. tour: (\S+)", line)
        if tag is None:
            continue
        start = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "::")
        indent = len(lines[start]) - len(lines[start].lstrip())
        commands = []
        for body in lines[start + 1:]:
            if body.strip() and len(body) - len(body.lstrip()) <= indent:
                break
            if body.strip():
                commands.append(body.split("  #")[0].strip())
        blocks[tag.group(1)] = commands
    return blocks


class TourBlockTests(SynchronousTestCase):
    def test_the_readme_holds_the_tour_in_order(self):
        blocks = tour_blocks(README.read_text())
        self.assertEqual(list(blocks), ["demo", "login", "open", "close"])
        self.assertEqual(blocks["demo"], ["scripts/demo"])
        self.assertTrue(all(command for commands in blocks.values() for command in commands))


class TourTests(TestCase):
    timeout = 30

    async def run_step(self, command: str, env: dict) -> str:
        code, output = await run_command(reactor, ["/bin/bash", "-c", command], env=env,
                                         cwd=str(REPO), timeout=15)
        self.assertEqual(code, 0, f"{command}:\n{output}")
        return output

    def background(self, command: str, env: dict, name: str) -> ChildProcess:
        process = ChildProcess(reactor, ["/bin/bash", "-c", f"exec {command}"], cwd=REPO,
                               env=env, name=name)
        self.addCleanup(process.stop)
        return process

    async def press_yes(self, browser: Browser, panel_url: str) -> None:
        await browser.navigate(panel_url)
        if await browser.evaluate("!!document.querySelector('input[name=operator]')"):
            await browser.evaluate(
                f"document.querySelector('input[name=operator]').value = "
                f"'{demo.OPERATOR}'; document.querySelector('input[name=password]').value"
                f" = '{demo.OPERATOR_PASSWORD}'")
            await browser.click("form[action='/login'] button")
        for _ in range(60):  # the panel refreshes itself every 2 s
            if await browser.evaluate("!!document.querySelector('button.yes')"):
                break
            await sleep(reactor, 0.25)
            await browser.navigate(panel_url)
        await browser.click("button.yes")

    async def test_the_readme_tour_as_written(self):
        blocks = tour_blocks(README.read_text())
        folder = Path(self.mktemp()).absolute()
        base = free_base_port()
        demo_env = {"REMOTECOMM_DEMO_DIR": str(folder), "REMOTECOMM_DEMO_BASE_PORT": str(base)}
        (command,) = blocks["demo"]
        running = self.background(command, demo_env, "demo")
        await running.wait_for_output("remotecomm demo is ready.", timeout=25)
        # "set the three variables it printed"
        env = dict(re.findall(r"export (REMOTECOMM_\w+)=(\S+)", running.output))
        self.assertEqual(sorted(env), ["REMOTECOMM_CA", "REMOTECOMM_HOME", "REMOTECOMM_SERVER"])
        panel_url = re.search(r"open (http://127\.0\.0\.1:\d+)", running.output).group(1)

        login, devices = blocks["login"]
        await self.run_step(login, env)
        self.assertRegex(await self.run_step(devices, env), r"mfp-0001 .* online +now")

        browser = Browser(reactor)
        self.addCleanup(lambda: (folder / "chromium.log").write_text(browser.output)
                        if folder.exists() else None)
        self.addCleanup(browser.stop)
        await browser.start()
        (open_web,) = blocks["open"]
        opening = self.background(open_web, env, "open")
        await opening.wait_for_output("Waiting for approval on mfp-0001")
        await self.press_yes(browser, panel_url)
        await opening.wait_for_output("Browser: open ")
        link = re.search(r"Browser: open (\S+)", opening.output).group(1)
        await browser.navigate(link)  # the device's own web pages, through the relay
        self.assertIn("Toner", await browser.evaluate("document.body.textContent"))

        close, open_panel = blocks["close"]
        await self.run_step(close, env)
        self.assertEqual(await opening.ended(), 0, opening.output)
        self.assertIn("Session with mfp-0001 ended after", opening.output)
        mirror = self.background(open_panel, env, "open-panel")
        await mirror.wait_for_output("Waiting for approval on mfp-0001")
        await self.press_yes(browser, panel_url)
        await mirror.wait_for_output("Browser: open ")
        await self.run_step(close, env)
        self.assertEqual(await mirror.ended(), 0, mirror.output)

        running.signal("INT")
        self.assertEqual(await running.ended(), 0, running.output[-2000:])
        self.assertTrue((folder / "demo.json").exists())  # the folder stays
