"""Tests for remotecomm.web.admin_api and remotecomm.accounts.administration: units, users,
passwords and the audit log through the REST API (StubTreq, a real SQLite file)."""

from remotecomm.accounts.passwords import make_hasher
from remotecomm.store.accounts import add_membership, insert_user
from remotecomm.testing.fakes import CHEAP_HASHING
from tests.web.test_api import PASSWORD, ApiTestCase

NEW_PASSWORD = "a much longer passphrase"


class AdminApiTests(ApiTestCase):
    def setUp(self):
        super().setUp()
        password_hash = make_hasher(CHEAP_HASHING).hash(PASSWORD)
        self.store.run_sync(insert_user, "pat", "Pat", password_hash, None, None, 0, True)
        self.store.run_sync(insert_user, "una", "Una", password_hash, "acme", "unit-admin", 0)
        self.pat = self.token(user_id="pat")
        self.una = self.token(user_id="una")

    def admin(self, method, path, body=None, token=None, unit="acme"):
        status, answer, _ = self.call(method, path, body, token=token or self.pat,
                                      headers={"X-Remotecomm-Unit": unit} if unit else None)
        return status, answer

    def test_a_new_unit_and_technician_through_the_api(self):
        status, unit = self.admin("POST", "/api/v1/units", {
            "unit_id": "initech", "name": "Initech", "time_zone": "America/Chicago"}, unit=None)
        self.assertEqual((status, unit["unit_id"], unit["time_zone"]),
                         (201, "initech", "America/Chicago"))
        status, user = self.admin("POST", "/api/v1/users", {
            "user_id": "ivan", "role": "technician", "password": NEW_PASSWORD},
            unit="initech")
        self.assertEqual((status, user["memberships"]),
                         (201, [{"unit_id": "initech", "role": "technician"}]))
        status, login, _ = self.login(user_id="ivan", password=NEW_PASSWORD)
        self.assertEqual((status, login["unit_id"]), (200, "initech"))
        status, devices, _ = self.call("GET", "/api/v1/devices", token=login["token"])
        self.assertEqual((status, devices["unit_id"], devices["devices"]), (200, "initech", []))
        status, body, _ = self.call("GET", "/api/v1/devices", token=login["token"],
                                    headers={"X-Remotecomm-Unit": "acme"})
        self.assertEqual((status, body["code"]), (404, "unit-not-found"))
        # Units, names and time zones are checked; IDs are not taken twice.
        for body, code in (({"unit_id": "initech", "name": "X", "time_zone": "UTC"},
                            "already-exists"),
                           ({"unit_id": "hooli", "name": "X", "time_zone": "Mars/Olympus"},
                            "invalid-field"),
                           ({"unit_id": "Bad Id", "name": "X", "time_zone": "UTC"},
                            "invalid-field")):
            self.assertEqual(self.admin("POST", "/api/v1/units", body, unit=None)[1]["code"],
                             code)
        status, again = self.admin("POST", "/api/v1/users", {
            "user_id": "ivan", "role": "technician", "password": NEW_PASSWORD})
        self.assertEqual((status, again["code"]), (409, "already-exists"))
        # A unit admin sees their units only; renames and re-zones them.
        status, units = self.admin("GET", "/api/v1/units", token=self.una, unit=None)
        self.assertEqual([u["unit_id"] for u in units["units"]], ["acme"])
        status, changed = self.admin("PATCH", "/api/v1/units/acme",
                                     {"name": "ACME Corp", "time_zone": "Europe/Paris"},
                                     token=self.una, unit=None)
        self.assertEqual((changed["name"], changed["time_zone"]), ("ACME Corp", "Europe/Paris"))
        status, refused = self.admin("PATCH", "/api/v1/units/globex", {"name": "Mine"},
                                     token=self.una, unit=None)
        self.assertEqual((status, refused["code"]), (404, "unit-not-found"))

    def test_a_set_password_token_is_shown_once_and_works_once(self):
        status, user = self.admin("POST", "/api/v1/users", {"user_id": "nina",
                                                            "role": "technician"},
                                  token=self.una)
        token = user["set_password_token"]
        status, answer = self.admin("POST", "/api/v1/password/set", {
            "user_id": "nina", "token": token, "new_password": NEW_PASSWORD}, token=None)
        self.assertEqual(status, 200)
        self.assertEqual(self.login(user_id="nina", password=NEW_PASSWORD)[0], 200)
        status, answer = self.admin("POST", "/api/v1/password/set", {
            "user_id": "nina", "token": token, "new_password": "yet another passphrase"},
            token=None)
        self.assertEqual((status, answer["code"]), (403, "invalid-password-token"))
        status, shown = self.admin("GET", "/api/v1/users/nina", token=self.una)
        self.assertNotIn("set_password_token", shown)
        self.assertNotIn("password_hash", shown)

    def test_disable_stops_the_token_and_enable_lets_the_user_back(self):
        alice = self.token()
        status, user = self.admin("POST", "/api/v1/users/alice/disable", token=self.una)
        self.assertEqual((status, user["disabled"]), (200, True))
        status, body, _ = self.call("GET", "/api/v1/devices", token=alice)
        self.assertEqual((status, body["code"]), (401, "invalid-token"))
        self.admin("POST", "/api/v1/users/alice/enable", token=self.una)
        self.assertEqual(self.login()[0], 200)
        records = [r for r in self.audit() if r["actor"] == "una"]
        self.assertEqual([r["kind"] for r in records], ["user-disabled", "user-enabled"])
        # Where the admin called from is kept with each change.
        self.assertTrue(all(r["source_address"] for r in records), records)

    def test_the_last_provider_admin_stays(self):
        status, body = self.admin("PUT", "/api/v1/users/pat/provider-admin",
                                  {"provider_admin": False}, unit=None)
        self.assertEqual((status, body["code"]), (409, "last-provider-admin"))
        refused = self.audit("admin-refused")[0]
        self.assertEqual((refused["actor"], refused["detail"]["code"]),
                         ("pat", "last-provider-admin"))
        # Disabling yourself as the last provider admin is refused too.
        self.store.run_sync(add_membership, "pat", "acme", "unit-admin", 0)
        status, body = self.admin("POST", "/api/v1/users/pat/disable")
        self.assertEqual((status, body["code"]), (409, "last-provider-admin"))
        self.admin("PUT", "/api/v1/users/una/provider-admin", {"provider_admin": True},
                   unit=None)
        status, body = self.admin("PUT", "/api/v1/users/pat/provider-admin",
                                  {"provider_admin": False}, unit=None)
        self.assertEqual((status, body["provider_admin"]), (200, False))

    def test_another_units_user_looks_like_no_user(self):
        for path in ("/api/v1/users/gina", "/api/v1/users/nobody"):
            status, body = self.admin("GET", path, token=self.una)
            self.assertEqual((status, body["code"]), (404, "user-not-found"))
        status, body = self.admin("POST", "/api/v1/users/gina/disable", token=self.una)
        self.assertEqual((status, body["code"]), (404, "user-not-found"))
        status, body = self.admin("PUT", "/api/v1/units/acme/users/gina", {"role": "technician"},
                                  token=self.una, unit=None)
        self.assertEqual((status, body["code"]), (404, "user-not-found"))
        # A provider admin may give her a role in acme: she then acts in two units.
        status, body = self.admin("PUT", "/api/v1/units/acme/users/gina",
                                  {"role": "technician"}, unit=None)
        self.assertEqual([m["unit_id"] for m in body["memberships"]], ["acme", "globex"])
        status, users = self.admin("GET", "/api/v1/users", token=self.una)
        self.assertEqual([u["user_id"] for u in users["users"]], ["alice", "gina", "una"])

    def test_a_unit_admin_leaves_the_account_of_a_user_of_other_units_alone(self):
        """Disabling and password resets reach every unit of the user: acme's admin may
        not make them for globex's gina (a provider admin may), only take acme from her."""
        self.admin("PUT", "/api/v1/units/acme/users/gina", {"role": "technician"}, unit=None)
        for path, body in (("/api/v1/users/gina/disable", None),
                           ("/api/v1/users/gina/password", {"password": NEW_PASSWORD})):
            status, refused = self.admin("POST", path, body, token=self.una)
            self.assertEqual((status, refused["code"]), (409, "user-in-other-units"))
            self.assertIn("also belongs to globex", refused["message"])
        self.assertEqual(self.login(user_id="gina")[0], 200)
        status, user = self.admin("POST", "/api/v1/users/gina/disable")  # the provider admin
        self.assertEqual((status, user["disabled"]), (200, True))
        status, body = self.admin("DELETE", "/api/v1/units/acme/users/gina", token=self.una,
                                  unit=None)
        self.assertEqual(status, 200)

    def test_passwords_reset_by_an_admin_and_changed_by_their_owner(self):
        alice = self.token()
        status, body = self.admin("POST", "/api/v1/users/alice/password",
                                  {"password": "short"}, token=self.una)
        self.assertEqual((status, body["code"]), (400, "weak-password"))
        self.admin("POST", "/api/v1/users/alice/password", {"password": NEW_PASSWORD},
                   token=self.una)
        self.assertEqual(self.call("GET", "/api/v1/devices", token=alice)[0], 401)
        alice = self.token(password=NEW_PASSWORD)
        status, body, _ = self.call("POST", "/api/v1/password", {
            "current_password": "wrong", "new_password": PASSWORD}, token=alice)
        self.assertEqual((status, body["code"]), (403, "wrong-password"))
        status, body, _ = self.call("POST", "/api/v1/password", {
            "current_password": NEW_PASSWORD, "new_password": PASSWORD}, token=alice)
        self.assertEqual(status, 200)
        self.assertEqual(self.login()[0], 200)

    def test_the_audit_log_of_the_unit_filtered_and_as_csv(self):
        self.login(password="wrong password here")
        self.admin("POST", "/api/v1/users/alice/disable", token=self.una)
        self.call("POST", "/api/v1/reports/send", {}, token=self.token(user_id="gina"))
        status, body = self.admin("GET", "/api/v1/audit", token=self.una)
        kinds = [r["kind"] for r in body["records"]]
        self.assertEqual(kinds[:2], ["user-disabled", "login-failed"])
        self.assertNotIn("permission-denied", kinds)  # gina's refusal is globex's
        status, body = self.admin("GET", "/api/v1/audit?kind=login-failed&limit=1",
                                  token=self.una)
        self.assertEqual(([r["actor"] for r in body["records"]], "next" in body),
                         (["alice"], True))
        status, body = self.admin("GET", "/api/v1/audit?kind=nonsense", token=self.una)
        self.assertEqual((status, body["code"]), (400, "invalid-field"))
        response = self.successResultOf(self.http.get(
            "https://manager.test/api/v1/audit.csv",
            headers={"Authorization": f"Bearer {self.una}",
                     "X-Remotecomm-Terminal": "t-0123456789abcdef0123456789abcdef"}))
        text = self.successResultOf(response.content()).decode()
        self.assertEqual(response.code, 200)
        self.assertTrue(text.startswith("at,kind,actor,source_address,unit_id,detail\r\n"))
        self.assertIn(",user-disabled,una,", text)
