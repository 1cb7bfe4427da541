"""Every parser at a process boundary, fuzzed with hypothesis on a bounded budget (issue 18,
"beyond the found bugs").  A crash -- an answer of 500, an exception other than the parser's
own refusal -- fails the test.  Each target names its input class and bound:

* REST bodies (any bytes up to 2 KiB, and JSON values nested up to 6 deep) on login and on
  authenticated routes of every kind: never 500 (a 503 for a service this test's API lacks
  is a clear answer);
* REST query strings (any printable text up to 200 characters) on the filtered lists:
  never 500;
* the panel channel's bodies (any JSON value up to 6 deep) on each of its POST/PUT routes:
  never 500;
* XMPP payloads (any element of our namespace with any names, attributes and children up
  to 3 deep) through the codec: a message or ``PayloadError``, nothing else;
* config files (any TOML built from the sections and keys the loaders know, and any text
  up to 1 KiB) for the server, the agent and the simulator: a config or ``ConfigError``
  (or ``SystemExit`` with a message, which is how a loader of ours stops), nothing else.

The envelope and the tunneled HTTP heads have their own property tests
(``tests/relay/test_envelope.py``, ``tests/streams/test_heads.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from remotecomm.config import ConfigError
from remotecomm.device.approvals import Approvals
from remotecomm.device.config import load_device_config
from remotecomm.device.history import History
from remotecomm.device.jobs import AgentJobs
from remotecomm.device.panel_channel import PanelChannel
from remotecomm.server.config import load_server_config
from remotecomm.simulator.config import load_simulator_config
from remotecomm.xmpp.payloads import NS_DEVICE, PAYLOAD_NAMES, PayloadError, decode
from tests.web.test_api import TERMINAL, ApiTestCase

# 120 examples per target in the suite; REMOTECOMM_FUZZ_EXAMPLES=2000 for a longer run.
BUDGET = settings(max_examples=int(os.environ.get("REMOTECOMM_FUZZ_EXAMPLES", "120")),
                  deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["user_id", "password", "terminal_id", "device_id",
                                       "app_id", "action", "key", "value", "role", "name",
                                       "time_zone", "unit_id", "outcome", "answer",
                                       "operator", "percent", "x"]) | st.text(max_size=8),
                      inner, max_size=5),
    max_leaves=12)
bodies = st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode())


class RestFuzzTests(ApiTestCase):
    """The manager's REST API: any body, any query, never a 500."""

    def setUp(self):
        super().setUp()
        self.alice = self.token()

    def send(self, method: str, path: str, data: bytes | None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers.update({"Authorization": f"Bearer {token}",
                            "X-Remotecomm-Terminal": TERMINAL})
        response = self.successResultOf(self.http.request(
            method, "https://manager.test" + path, data=data, headers=headers))
        self.successResultOf(response.content())
        return response.code

    @BUDGET
    @given(bodies)
    def test_login_bodies(self, body):
        self.assertNotEqual(self.send("POST", "/api/v1/login", body), 500)

    @BUDGET
    @given(st.sampled_from(["/api/v1/sessions", "/api/v1/devices/mfp-1/jobs",
                            "/api/v1/reports/recipients", "/api/v1/reports/schedules",
                            "/api/v1/password", "/api/v1/users", "/api/v1/units",
                            "/api/v1/password/set", "/api/v1/logout"]), bodies)
    def test_authenticated_bodies(self, path, body):
        self.assertNotEqual(self.send("POST", path, body, self.alice), 500, path)

    @BUDGET
    @given(st.sampled_from(["/api/v1/sessions", "/api/v1/reports/sessions",
                            "/api/v1/sessions.csv", "/api/v1/audit", "/api/v1/jobs"]),
           st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF),
                   max_size=200))
    def test_query_strings(self, path, query):
        self.assertNotEqual(self.send("GET", f"{path}?{query}", None, self.alice), 500,
                            (path, query))


class PanelChannelFuzzTests(SynchronousTestCase):
    """The agent's panel channel: any JSON on each route, never a 500."""

    def setUp(self):
        clock = Clock()
        history = History(Path(self.mktemp()) / "history.jsonl")
        approvals = Approvals(clock, history, {"web-server"}, lambda c, d: None)
        jobs = AgentJobs(clock, history, lambda c, m: None)
        self.http = StubTreq(PanelChannel(approvals, "s" * 32, jobs=jobs).resource())

    @BUDGET
    @given(st.sampled_from([("POST", "/v1/approvals/" + "r" * 22),
                            ("POST", "/v1/sessions/" + "r" * 22 + "/end"),
                            ("PUT", "/v1/device"), ("POST", "/v1/jobs/job-" + "j" * 22),
                            ("POST", "/v1/jobs/job-" + "j" * 22 + "/progress"),
                            ("POST", "/v1/panel-logins/failed")]), bodies)
    def test_bodies(self, route, body):
        method, path = route
        response = self.successResultOf(self.http.request(
            method, "http://agent" + path, data=body,
            headers={"X-Panel-Secret": "s" * 32, "Content-Type": "application/json"}))
        self.successResultOf(response.content())
        self.assertNotEqual(response.code, 500, (route, body))


names = st.sampled_from(sorted(PAYLOAD_NAMES) + ["app", "setting", "x"])
attribute_names = st.sampled_from(["request-id", "session-id", "job-id", "action", "token",
                                   "relay-url", "app", "version", "password", "percent",
                                   "phase", "outcome", "deadline-us", "agent-version",
                                   "envelope-version", "image-url", "image-size", "kind",
                                   "name", "min", "max", "choices", "operator", "at-us", "x"])
attribute_values = st.text(max_size=80) | st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@st.composite
def elements(draw, depth: int = 0) -> domish.Element:
    element = domish.Element((NS_DEVICE, draw(names)))
    for name in draw(st.lists(attribute_names, max_size=6, unique=True)):
        element[name] = draw(attribute_values)
    if depth < 2:
        for child in draw(st.lists(elements(depth + 1), max_size=3)):  # noqa: B008
            element.addChild(child)
    text = draw(st.none() | st.text(max_size=60))
    if text:
        element.addContent(text)
    return element


class PayloadFuzzTests(SynchronousTestCase):
    """The XMPP codec: any element of our namespace decodes or is refused."""

    @BUDGET
    @given(elements())
    def test_any_element(self, payload):
        iq = domish.Element((None, "iq"))
        iq["type"] = "set"
        iq.addChild(payload)
        try:
            decode(iq)
        except PayloadError:
            pass


SECTIONS = {
    "server": ["data_dir", "listen", "public_url"],
    "tls": ["enabled", "profile", "names"],
    "accounts": ["login_failures_per_account", "api_token_lifetime", "argon2_time_cost"],
    "xmpp": ["enabled", "c2s_port", "devices_domain", "server", "domain", "password",
             "ca_certificate", "components"],
    "sessions": ["approval_timeout", "max_lifetime", "allow_test_approver"],
    "relay": ["node", "public_url", "heartbeat_interval"],
    "mail": ["enabled", "smtp_host", "smtp_port", "from_address"],
    "device": ["device_id", "data_dir", "name", "model"],
    "apps": ["web-server", "remote-panel"],
    "panel": ["secret", "socket", "listen"],
    "operators": ["olga", "Bad Name"],
    "approval": ["test_approver"],
}
toml_values = (st.integers(-10**12, 10**12) | st.booleans() | st.text(max_size=30)
               | st.lists(st.text(max_size=10), max_size=3) | st.sampled_from(
                   ["5m", "-1s", "tcp:0", "tcp:8443:interface=0.0.0.0", "https://x:1/",
                    "Europe/Berlin", "mfp-1", "a" * 40]))


def toml_text(document: dict) -> str:
    lines = []
    for section, values in document.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{json.dumps(key) if ' ' in key else key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


documents = st.dictionaries(st.sampled_from(sorted(SECTIONS)), st.none(), max_size=6).flatmap(
    lambda sections: st.fixed_dictionaries({
        section: st.dictionaries(st.sampled_from(SECTIONS[section]), toml_values, max_size=4)
        for section in sections})).map(toml_text)


class ConfigFuzzTests(SynchronousTestCase):
    """Every config loader: a config or a clear refusal."""

    @BUDGET
    @given(documents | st.text(max_size=1024))
    def test_any_config_file(self, text):
        path = Path(self.mktemp())
        path.write_text(text)
        for load in (load_server_config, load_device_config, load_simulator_config):
            try:
                load(path)
            except (ConfigError, SystemExit):
                pass
