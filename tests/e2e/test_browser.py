"""End to end with a real browser: headless Chromium in a ``remote-panel`` session.

Chromium (Debian's, headless, as a child process) opens the one-time link
``remotecomm open`` printed, loads the mirror of the device's panel through
the terminal's local port, the relay and the device agent, clicks a button
with the mouse and sees the simulated device's state change on the page.
"""

import re

from twisted.internet import reactor

from remotecomm.testing.browser import Browser
from remotecomm.testing.http import http_client
from tests.e2e.test_local_port import LocalPortTestCase


class RemotePanelInChromiumTests(LocalPortTestCase):
    """S203, S231–S243 as a person at a browser sees them."""

    app = "remote-panel"

    async def test_open_the_link_click_a_button_see_the_device_change(self):
        link = re.search(r"Browser: open (\S+)", self.opening.output).group(1)
        self.assertRegex(link, r"^http://mfp-1-[0-9a-f]{8}\.localhost:\d+/\.remotecomm/")
        browser = Browser(reactor)
        self.addCleanup(lambda: (self.setup.folder / "chromium.log").write_text(browser.output))
        self.addCleanup(browser.stop)
        await browser.start()
        await browser.navigate(link)
        self.assertEqual(await browser.evaluate("location.href"), self.session["local_url"])
        self.assertEqual(await browser.evaluate(
            "document.getElementById('screen').dataset.screen"), "home")
        self.assertIn("Remote panel", await browser.evaluate("document.title"))
        await browser.click("#key-copy")
        self.assertEqual(await browser.evaluate(
            "document.getElementById('screen').dataset.screen"), "copy")
        await browser.click("#key-plus")
        await browser.click("#key-start")
        self.assertEqual(await browser.evaluate(
            "document.getElementById('status').textContent"), "Copied 2 pages")
        # The device itself changed, not only the page: ask its app directly.
        response = await http_client(reactor).get(
            f"http://127.0.0.1:{self.app_ports['remote-panel']}/api/screen")
        screen = await response.json()
        self.assertEqual((screen["screen"], screen["counters"]["copied"]), ("copy", 5212))
        # The link worked once: a second browser (or another local user) cannot use it.
        self.assertEqual(await browser.evaluate("document.cookie"), "")  # HttpOnly
        await browser.navigate(link)
        self.assertIn("not valid", await browser.evaluate("document.body.textContent"))
