"""Every endpoint with every role, from the permission table (not a hand-made list), and the
unit a request acts in."""

import json
import re
from pathlib import Path

from remotecomm.accounts.passwords import make_hasher
from remotecomm.accounts.permissions import (ACTIONS, ENDPOINTS, PUBLIC_ENDPOINTS, ROLES, allowed,
                                             permissions_table)
from remotecomm.store.accounts import add_membership, insert_user
from remotecomm.testing.fakes import CHEAP_HASHING
from tests.web.test_api import PASSWORD, ApiTestCase

DOCS = Path(__file__).parents[2] / "docs" / "permissions.md"
SAMPLE_PARAMETERS = {"request_id": "r" * 22, "job_id": "job-" + "j" * 22,
                     "device_id": "mfp-1", "address": "ops@example.com",
                     "schedule_id": "1", "unit_id": "acme",
                     "user_id": "alice",  # a bystander: disabling her harms no caller
                     "node": "relay-1", "image_id": "fw-" + "i" * 22}


class PermissionTableTests(ApiTestCase):
    def setUp(self):
        super().setUp()
        password_hash = make_hasher(CHEAP_HASHING).hash(PASSWORD)
        self.store.run_sync(insert_user, "pat", "Pat", password_hash, None, None, 0, True)
        self.store.run_sync(insert_user, "una", "Una", password_hash, "acme", "unit-admin", 0)
        self.store.run_sync(insert_user, "tom", "Tom", password_hash, "acme", "technician", 0)
        self.tokens = {role: self.token(user_id=user)
                       for role, user in zip(ROLES, ("pat", "una", "tom"), strict=True)}

    def any_call(self, method: str, path: str, token: str) -> tuple[int, dict]:
        """A call in unit acme whose answer may be a file; its status and JSON (or {})."""
        response = self.successResultOf(self.http.request(
            method, "https://manager.test" + path, data=b"{}" if method == "POST" else None,
            headers={"Authorization": f"Bearer {token}", "X-Remotecomm-Unit": "acme",
                     "X-Remotecomm-Terminal": "t-0123456789abcdef0123456789abcdef",
                     "Content-Type": "application/json"}))
        content = self.successResultOf(response.content())
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, {}

    def test_the_documented_table_is_the_code_table(self):
        self.assertTrue(DOCS.read_text().endswith(permissions_table()))

    def test_every_route_of_the_api_has_a_rule(self):
        routes = {f"{method} {route.pattern}" for route in self.api.resource()._routes
                  for method in route.handlers}
        self.assertEqual(routes - set(ENDPOINTS) - set(PUBLIC_ENDPOINTS), set())
        self.assertTrue(all(action in ACTIONS for action in ENDPOINTS.values() if action))

    def test_every_role_on_every_endpoint(self):
        """A role the table refuses gets 403 forbidden, audited; one it allows never does
        (the call may still fail for other reasons: no body, no such thing, no service)."""
        for endpoint, action in ENDPOINTS.items():
            method, pattern = endpoint.split(" ", 1)
            path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMETERS[m.group(1)], pattern)
            for role in ROLES:
                if method == "POST" and path == "/api/v1/logout":
                    continue
                status, body = self.any_call(method, path, self.tokens[role])
                refused = (status, body.get("code")) == (403, "forbidden")
                self.assertEqual(refused, bool(action) and not allowed(role, action),
                                 (endpoint, role, status, body))
        expected = sorted((endpoint, role) for endpoint, action in ENDPOINTS.items()
                          for role in ROLES if action and not allowed(role, action))
        self.assertEqual(sorted((r["detail"]["endpoint"], r["detail"]["role"])
                                for r in self.audit("permission-denied")), expected)

    def test_the_unit_a_request_acts_in(self):
        password_hash = make_hasher(CHEAP_HASHING).hash(PASSWORD)
        self.store.run_sync(insert_user, "tess", "Tess", password_hash, "acme", "technician", 0)
        self.store.run_sync(add_membership, "tess", "globex", "unit-admin", 0)
        status, body, _ = self.login(user_id="tess")
        self.assertEqual((body["unit_id"], body["memberships"]),
                         (None, [{"unit_id": "acme", "role": "technician"},
                                 {"unit_id": "globex", "role": "unit-admin"}]))
        token = body["token"]
        status, body, _ = self.call("GET", "/api/v1/devices", token=token)
        self.assertEqual((status, body["code"], body["units"]),
                         (400, "unit-required", ["acme", "globex"]))
        for unit, devices in (("acme", ["mfp-1", "mfp-2"]), ("globex", ["gx-1"])):
            status, body, _ = self.call("GET", "/api/v1/devices", token=token,
                                        headers={"X-Remotecomm-Unit": unit})
            self.assertEqual(sorted(d["device_id"] for d in body["devices"]), devices)
        # Her role follows the unit: an admin in globex, a technician in acme.
        status, body, _ = self.call("POST", "/api/v1/reports/send", {}, token=token,
                                    headers={"X-Remotecomm-Unit": "acme"})
        self.assertEqual((status, body["code"]), (403, "forbidden"))
        # A unit she has no part in looks like one that does not exist.
        for unit in ("initech", "nope", "NOT VALID"):
            status, body, _ = self.call("GET", "/api/v1/devices", token=token,
                                        headers={"X-Remotecomm-Unit": unit})
            self.assertEqual((status, body["code"]), (404, "unit-not-found"), unit)
        # A provider admin acts in any unit that exists.
        status, body, _ = self.call("GET", "/api/v1/devices", token=self.tokens[ROLES[0]],
                                    headers={"X-Remotecomm-Unit": "globex"})
        self.assertEqual([d["device_id"] for d in body["devices"]], ["gx-1"])
