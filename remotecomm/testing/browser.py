"""Headless Chromium for tests, driven over the DevTools protocol (``--remote-debugging-pipe``).

Debian's ``chromium`` runs as a child process of the test's reactor
(``--headless --no-sandbox``: tests run as root; never a downloaded browser).
With the pipe, Chromium reads DevTools commands on its file descriptor 3
and writes answers and events on 4, each a JSON message ended by a NUL
byte.  :class:`Browser` sends commands to one page and waits for answers
and events, each wait bounded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
from collections import deque
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

CHROMIUM = "chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--log-level=3", "--remote-debugging-pipe"]


def spki_fingerprint(certificate: Path) -> str:
    """Base64 of the SHA-256 of a PEM certificate's public key (SubjectPublicKeyInfo), as
    Chromium's ``--ignore-certificate-errors-spki-list`` takes it."""
    loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
    key = loaded.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(key).digest()).decode("ascii")


class BrowserError(RuntimeError):
    """Chromium is missing, exited, answered with an error or did not answer in time."""


class _Pipe(ProcessProtocol):
    def __init__(self, browser: "Browser"):
        self._browser = browser
        self._buffer = b""
        self.output = b""

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd != 4:
            self.output = (self.output + data)[-20000:]
            return
        self._buffer += data
        while b"\0" in self._buffer:
            message, self._buffer = self._buffer.split(b"\0", 1)
            self._browser._received(json.loads(message))

    def processEnded(self, reason) -> None:
        self._browser._ended(reason)


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, reactor, timeout: float = 10.0, trusted_certificate: Path | None = None):
        self._reactor = reactor
        self._timeout = timeout
        self._flags = list(FLAGS)
        if trusted_certificate is not None:
            # Trust this one server certificate (our dev CA's), as a person who installed
            # the CA would; every other certificate error still fails.
            self._flags.append(f"--ignore-certificate-errors-spki-list="
                               f"{spki_fingerprint(trusted_certificate)}")
        self._next_id = 1
        self._answers: dict[int, Deferred] = {}
        self._events: deque = deque(maxlen=500)
        self._waiting: list[tuple[str, Deferred]] = []
        self._profile = tempfile.mkdtemp(prefix="remotecomm-chromium-")
        self._process = None
        self._pipe = _Pipe(self)
        self._exited: Deferred = Deferred()
        self.session_id: str | None = None

    async def start(self) -> None:
        """Start Chromium and open a blank page to drive."""
        executable = shutil.which(CHROMIUM)
        if executable is None:
            raise BrowserError("Debian's chromium is not installed (scripts/test installs it)")
        self._process = self._reactor.spawnProcess(
            self._pipe, executable, [executable, *self._flags,
                                     f"--user-data-dir={self._profile}"],
            env=None, childFDs={0: "w", 1: "r", 2: "r", 3: "w", 4: "r"})
        target = await self.call("Target.createTarget", {"url": "about:blank"}, page=False)
        attached = await self.call("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True}, page=False)
        self.session_id = attached["sessionId"]
        await self.call("Page.enable")
        await self.call("Runtime.enable")

    def call(self, method: str, params: dict | None = None, *, page: bool = True) -> Deferred:
        """Send a DevTools command (to the page unless ``page=False``); fires with its result."""
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session_id
        answer: Deferred = Deferred()
        self._answers[self._next_id] = answer
        self._next_id += 1
        self._process.writeToChild(3, json.dumps(message).encode("utf-8") + b"\0")
        return answer.addTimeout(self._timeout, self._reactor)

    def next_event(self, method: str) -> Deferred:
        """Fires with the params of the next ``method`` event from now on."""
        waiting: Deferred = Deferred()
        self._waiting.append((method, waiting))
        return waiting.addTimeout(self._timeout, self._reactor)

    async def navigate(self, url: str) -> None:
        """Open ``url`` and wait until the page (after any redirects) has loaded."""
        loaded = self.next_event("Page.loadEventFired")
        result = await self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url} failed: {result['errorText']}")
        await loaded

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", {"expression": expression,
                                                      "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def click(self, selector: str, wait_for_load: bool = True) -> None:
        """Click the element at its centre with the mouse, as a person would, and wait for
        the page that follows to load (unless the click loads no page: a download)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            # The first box: a link wrapped over two lines has nothing at its overall centre.
            f"const r = e.getClientRects()[0] || e.getBoundingClientRect(); "
            f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        loaded = self.next_event("Page.loadEventFired") if wait_for_load else None
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", {
                "type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1})
        if loaded is not None:
            await loaded

    async def choose_file(self, selector: str, path: Path) -> None:
        """Put a file into a file input, as a person choosing it would (``path`` absolute:
        Chromium reads it from its own working directory otherwise, and cannot)."""
        document = await self.call("DOM.getDocument", {"depth": 0})
        node = await self.call("DOM.querySelector", {
            "nodeId": document["root"]["nodeId"], "selector": selector})
        await self.call("DOM.setFileInputFiles", {"files": [str(path.absolute())],
                                                  "nodeId": node["nodeId"]})

    async def download(self, selector: str, folder: Path) -> Path:
        """Click a download link and wait until the file is in ``folder``; its path."""
        folder.mkdir(parents=True, exist_ok=True)
        await self.call("Browser.setDownloadBehavior", {
            "behavior": "allowAndName", "downloadPath": str(folder), "eventsEnabled": True},
            page=False)
        begun = self.next_event("Browser.downloadWillBegin")
        await self.click(selector, wait_for_load=False)
        guid = (await begun)["guid"]
        while True:
            progress = await self.next_event("Browser.downloadProgress")
            if progress.get("guid") == guid and progress.get("state") == "completed":
                return folder / guid
            if progress.get("guid") == guid and progress.get("state") == "canceled":
                raise BrowserError(f"the download of {selector} was cancelled")

    async def screenshot(self, path: Path) -> None:
        """Save what the page shows now as a PNG at ``path``."""
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def events(self, method: str) -> list[dict]:
        """The params of the ``method`` events seen so far (the last 500 events)."""
        return [e.get("params", {}) for e in self._events if e.get("method") == method]

    def _received(self, message: dict) -> None:
        if "id" in message:
            answer = self._answers.pop(message["id"], None)
            if answer is None or answer.called:
                return
            if "error" in message:
                answer.errback(BrowserError(str(message["error"])))
            else:
                answer.callback(message.get("result", {}))
            return
        method = message.get("method")
        self._events.append(message)
        for entry in list(self._waiting):
            if entry[0] == method and not entry[1].called:
                self._waiting.remove(entry)
                entry[1].callback(message.get("params", {}))

    def _ended(self, reason) -> None:
        for answer in self._answers.values():
            if not answer.called:
                answer.errback(BrowserError("chromium exited"))
        self._answers.clear()
        self._exited.callback(None)

    async def stop(self) -> None:
        """Close Chromium and remove its profile."""
        if self._process is not None and not self._exited.called:
            try:
                self._process.signalProcess("TERM")
            except error.ProcessExitedAlready:
                pass
            kill = self._reactor.callLater(5, self._kill)
            await self._exited
            if kill.active():
                kill.cancel()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _kill(self) -> None:
        try:
            self._process.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    @property
    def output(self) -> str:
        """Chromium's own stdout/stderr (the tail)."""
        return self._pipe.output.decode("utf-8", "replace")
