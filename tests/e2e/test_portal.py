"""End to end: the portal in headless Chromium, served by a real ``twistd remotecomm`` over
TLS (Chromium trusts the server's certificate by its key, as a person who installed the
dev CA would).  Screenshots of the pages go to ``_trial_temp/portal-screenshots`` for a
person to look at."""

import hashlib
import json
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from remotecomm.admin import commands as admin
from remotecomm.testing.browser import Browser, BrowserError
from remotecomm.testing.http import LocalPortClient, http_client
from remotecomm.testing.processes import free_port, sleep
from remotecomm.testing.servers import PASSWORD, ServerSetup

HOSTILE = "<img src=x onerror=alert(1)>"
SCREENSHOTS = Path("portal-screenshots").absolute()


class PortalInChromiumTests(TestCase):
    """Log in, see the fleet, look at one device, log out: as a person at a browser."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice", "tom", "adam:unit-admin"],
                                       "devices": ["mfp-1"]},
                              "globex": {"users": ["gina"], "devices": ["gx-1"]}})
        config = self.setup.server_config()
        admin.add_device(config, reactor, "mfp-2", "acme", HOSTILE, "<b>MFP</b>")
        await self.setup.start()
        self.browser = Browser(reactor, trusted_certificate=config.tls.certificate)
        self.addCleanup(lambda: (self.setup.folder / "chromium.log").write_text(
            self.browser.output))
        self.addCleanup(self.browser.stop)
        await self.browser.start()

    async def text_of(self, selector: str) -> str:
        return await self.browser.evaluate(
            f"document.querySelector({json.dumps(selector)}).textContent")

    async def log_in(self, user: str) -> None:
        await self.browser.navigate(self.setup.url + "/portal/login")
        await self.browser.evaluate(f"document.getElementById('user_id').value = '{user}'")
        await self.browser.evaluate(f"document.getElementById('password').value = "
                                    f"{json.dumps(PASSWORD)}")
        await self.browser.click("#login")

    async def test_log_in_see_the_fleet_and_a_device_log_out(self):
        # On the wire first: the policy and the login cookie's flags.
        response = await http_client(reactor, self.setup.ca).get(
            self.setup.url + "/portal/login")
        await response.content()
        policy = response.headers.getRawHeaders("content-security-policy")[0]
        self.assertIn("frame-ancestors 'none'", policy)
        self.assertIn("default-src 'none'", policy)
        self.assertNotIn("unsafe", policy)
        self.assertEqual(response.headers.getRawHeaders("strict-transport-security"),
                         ["max-age=31536000"])
        nonce = response.headers.getRawHeaders("set-cookie")[0]
        for flag in ("secure", "httponly", "samesite=strict", "path=/portal/login"):
            self.assertIn(flag, nonce.lower())

        browser = self.browser
        await browser.call("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        await browser.navigate(self.setup.url + "/portal/")
        self.assertEqual(await browser.evaluate("location.pathname"), "/portal/login")
        await browser.screenshot(SCREENSHOTS / "login.png")
        await browser.evaluate("document.getElementById('user_id').value = 'alice'")
        await browser.evaluate(f"document.getElementById('password').value = "
                               f"{json.dumps(PASSWORD)}")
        await browser.click("#login")
        self.assertEqual(await browser.evaluate("location.pathname"), "/portal/")
        self.assertEqual(await self.text_of("h1"), "Devices of unit acme")
        rows = await browser.evaluate(
            "[...document.querySelectorAll('#devices tbody tr')].map(r => r.dataset.device)")
        self.assertEqual(rows, ["mfp-1", "mfp-2"])  # globex's gx-1 is not shown

        # Device-reported text is text: no element made of it, no script run from it.
        self.assertEqual(await self.text_of("tr[data-device='mfp-2'] td a"), HOSTILE)
        self.assertEqual(await browser.evaluate("document.querySelectorAll('img').length"), 0)
        self.assertEqual(await browser.evaluate("document.querySelectorAll('b').length"), 0)
        self.assertEqual(browser.events("Page.javascriptDialogOpening"), [])
        await browser.screenshot(SCREENSHOTS / "devices.png")

        # The session cookie: HttpOnly (no script sees it), Secure, SameSite=Strict.
        self.assertEqual(await browser.evaluate("document.cookie"), "")
        cookies = (await browser.call("Network.getCookies",
                                      {"urls": [self.setup.url + "/portal/"]}))["cookies"]
        session = next(c for c in cookies if c["name"] == "remotecomm_portal")
        self.assertEqual((session["httpOnly"], session["secure"], session["sameSite"],
                          session["path"]), (True, True, "Strict", "/portal"))

        await browser.click("tr[data-device='mfp-2'] td a")
        self.assertEqual(await browser.evaluate("document.title"), f"{HOSTILE} · remotecomm")
        self.assertEqual(await browser.evaluate("document.querySelectorAll('img').length"), 0)
        await browser.screenshot(SCREENSHOTS / "device.png")

        # A phone's width: one column, nothing wider than the screen.
        await browser.call("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        await browser.navigate(self.setup.url + "/portal/devices/mfp-1")
        # Nothing is wider than the screen but a table's content, which scrolls in its box.
        wide = await browser.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => "
            "e.getBoundingClientRect().right > 391 && !e.parentNode.closest('.table'))"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className)")
        self.assertEqual(wide, [])
        self.assertLessEqual(await browser.evaluate(
            "document.documentElement.scrollWidth"), 390)
        await browser.screenshot(SCREENSHOTS / "device-phone.png")
        await browser.call("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})

        await browser.click("header nav a[href='/portal/sessions']")
        self.assertEqual(await self.text_of("h1"), "Sessions of unit acme")
        self.assertIn("No sessions.", await self.text_of("main"))

        await browser.click("header nav a[href='/portal/reports']")
        self.assertEqual(await self.text_of("h1"), "Report of unit acme")
        self.assertEqual(await browser.evaluate("document.querySelectorAll('svg.chart').length"),
                         1)  # sessions per day; no device time or ends yet: said in words
        await browser.screenshot(SCREENSHOTS / "reports.png")
        csv = await browser.download("#csv-days", Path(self.mktemp()))
        self.assertTrue(csv.read_text().startswith("from,to,day,"))

        # A firmware image, uploaded with a progress bar (the script sends the file).
        image = Path(self.mktemp() + ".bin").absolute()
        image.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
        await browser.click("header nav a[href='/portal/firmware']")
        await browser.evaluate("document.getElementById('version').value = '4.3.0'")
        await browser.choose_file("#image", image)
        await browser.click("#upload-button")  # the page loads again once the image is kept
        self.assertEqual(await self.text_of("#images tbody tr td"), "4.3.0")
        self.assertEqual(await browser.evaluate(
            "document.querySelector('#images tbody tr td code').parentNode.title"),
            hashlib.sha256(image.read_bytes()).hexdigest())
        await browser.screenshot(SCREENSHOTS / "firmware.png")

        await browser.click("header form.logout button")
        self.assertEqual(await browser.evaluate("location.pathname"), "/portal/login")
        await browser.navigate(self.setup.url + "/portal/")
        self.assertEqual(await browser.evaluate("location.pathname"), "/portal/login")
        self.assertEqual(browser.events("Page.javascriptDialogOpening"), [])

        # A unit admin disables a technician, and the audit log says so.
        await self.log_in("adam")
        await browser.click("header nav a[href='/portal/users']")
        await browser.click("form[action='/portal/disable/tom'] button")
        self.assertEqual(await self.text_of("tr[data-user='tom'] .user-state"), "disabled")
        await browser.screenshot(SCREENSHOTS / "users.png")
        await browser.click("header nav a[href='/portal/audit']")
        self.assertIn("user_id=tom", await self.text_of("#audit tbody tr"))
        await browser.screenshot(SCREENSHOTS / "audit.png")
        code, output = await self.setup.cli("login", "--user", "tom", "--password-stdin",
                                            stdin=PASSWORD.encode() + b"\n")
        self.assertEqual(code, 1, output)  # a disabled user cannot log in


class AskForASessionInChromiumTests(TestCase):
    """S121 and S141–S150 from the portal: a maintenance action and its job, live; then ask
    on the device's page, the operator presses YES on the panel (a second browser), the
    portal turns "approved" by itself, ``remotecomm join`` serves the session on the chosen
    terminal, and End in the portal ends it."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        app_ports = {"web-server": free_port(), "remote-panel": free_port()}
        self.setup.configure_agent("mfp-1", self.setup.app_urls(app_ports))
        await self.setup.start()
        agent = self.setup.start_agent("mfp-1")
        simulator, self.panel_url = self.setup.start_simulator(
            "mfp-1", {"olga": "panel password"}, app_ports=app_ports)
        await simulator.wait_for_output("remote-panel on")
        await self.setup.login("alice")  # the CLI terminal the session will be served on
        await agent.wait_for_output("announced to rms.localhost")
        await self.setup.wait_device("mfp-1", online=True)
        config = self.setup.server_config()
        self.portal = Browser(reactor, trusted_certificate=config.tls.certificate)
        self.panel = Browser(reactor)
        for browser, name in ((self.portal, "portal"), (self.panel, "panel")):
            self.addCleanup(lambda b=browser, n=name: (
                self.setup.folder / f"chromium-{n}.log").write_text(b.output))
            self.addCleanup(browser.stop)
        await gatherResults([ensureDeferred(self.portal.start()),
                             ensureDeferred(self.panel.start())])
        await self.portal.call("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})

    async def wait_for(self, browser: Browser, expression: str, seconds: float = 10):
        """Until ``expression`` is true in the page (which may be reloading meanwhile)."""
        for _ in range(int(seconds * 10)):
            try:
                if await browser.evaluate(expression):
                    return
            except BrowserError:
                pass  # between two loads
            await sleep(reactor, 0.1)
        try:
            shown = await browser.evaluate("location.href + ' ' + document.body.innerText")
        except BrowserError as e:
            shown = str(e)
        self.fail(f"not within {seconds} s: {expression}; the page: {shown[:1500]}")

    async def test_maintain_then_ask_approve_on_the_panel_join_and_end(self):
        portal, panel = self.portal, self.panel
        await portal.navigate(self.setup.url + "/portal/login")
        await portal.evaluate("document.getElementById('user_id').value = 'alice'")
        await portal.evaluate(f"document.getElementById('password').value = "
                              f"{json.dumps(PASSWORD)}")
        await portal.click("#login")
        # Maintenance first: read the counters, and watch the job turn done by itself.
        await portal.navigate(self.setup.url + "/portal/devices/mfp-1")
        await portal.evaluate("document.getElementById('action').value = 'counters'")
        await portal.click("#run-job")
        self.assertTrue((await portal.evaluate("location.pathname")).startswith("/portal/job/"))
        await self.wait_for(portal, "document.querySelector('.job-state.done') !== null")
        self.assertIn("What the device answered", await portal.evaluate(
            "document.querySelector('main').textContent"))
        await portal.screenshot(SCREENSHOTS / "job.png")

        await portal.navigate(self.setup.url + "/portal/devices/mfp-1")
        terminal = json.loads((self.setup.terminal_home / "state.json").read_text())[
            "terminal_id"]
        self.assertEqual(await portal.evaluate(
            "document.getElementById('terminal_id').value"), terminal)
        await portal.evaluate("document.getElementById('app_id').value = 'web-server'")
        await portal.screenshot(SCREENSHOTS / "ask.png")
        await portal.click("#ask")
        request_id = (await portal.evaluate("location.pathname")).rsplit("/", 1)[1]
        self.assertIn("Waiting for the operator at mfp-1",
                      await portal.evaluate("document.getElementById('progress').textContent"))
        await self.wait_for(portal, "/^[0-9]+:[0-9]{2}$/.test("
                                    "document.querySelector('[data-deadline]').textContent)")
        await portal.screenshot(SCREENSHOTS / "waiting.png")

        # The operator, at the device's panel in another browser, presses YES.
        await panel.navigate(self.panel_url + "/")
        loaded = panel.next_event("Page.loadEventFired")
        await panel.evaluate(
            "document.querySelector('input[name=operator]').value = 'olga';"
            "document.querySelector('input[name=password]').value = 'panel password';"
            "document.querySelector('form[action=\"/login\"]').submit()")
        await loaded
        card = f".request[data-request-id='{request_id}']"
        for _ in range(50):
            if await panel.evaluate(f"!!document.querySelector(\"{card}\")"):
                break
            await sleep(reactor, 0.1)
            await panel.navigate(self.panel_url + "/")
        await panel.click(f"{card} button.yes")

        # The portal's page turns by itself: approved, and what to run where.
        await self.wait_for(portal, "(document.getElementById('progress') || {}).textContent"
                                    f".includes('remotecomm join {request_id}')")
        self.assertIn(f"On your terminal {terminal}", await portal.evaluate(
            "document.getElementById('progress').textContent"))
        await portal.screenshot(SCREENSHOTS / "approved.png")

        joining = self.setup.cli_process("join", request_id)
        await joining.wait_for_output("Scripts: ", timeout=15)
        session = json.loads((self.setup.terminal_home / "sessions" / "mfp-1.json").read_text())
        response = await LocalPortClient(reactor, session).request("GET", "/api/status")
        self.assertEqual(response.code, 200)
        await response.content()
        await self.wait_for(portal, "document.querySelector('.session-state.active') !== null")

        await portal.click(f"form[action='/portal/end/{request_id}'] button")
        self.assertEqual(await joining.ended(), 0, joining.output)
        await self.wait_for(portal, "document.querySelector('.session-state.ended') !== null")
        self.assertIn("ended (normal)", await portal.evaluate(
            "document.querySelector('.session-state').textContent"))
        self.assertEqual(portal.events("Page.javascriptDialogOpening"), [])
