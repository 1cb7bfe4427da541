"""Tests for remotecomm.portal.security: the session cookie's value and CSRF tokens."""

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.identifiers import TERMINAL_ID, is_valid
from remotecomm.portal.security import PortalSession, new_terminal_id, same

TOKEN = "A" * 43


class PortalSessionTests(SynchronousTestCase):
    def test_a_session_survives_its_cookie(self):
        for unit in ("acme", "unit.with.dots", None):
            session = PortalSession(new_terminal_id(), unit, 1_800_000_000, TOKEN)
            self.assertEqual(PortalSession.decode(session.encode()), session)

    def test_terminal_ids_are_valid_and_fresh(self):
        first, second = new_terminal_id(), new_terminal_id()
        self.assertTrue(is_valid(TERMINAL_ID, first))
        self.assertNotEqual(first, second)

    def test_anything_else_is_no_session(self):
        good = PortalSession("portal-" + "x" * 24, "acme", 1, TOKEN).encode()
        for value in (None, b"", b"x", good + b":more", good.replace(b"acme", b"ACME!"),
                      good.replace(b":1:", b":soon:"), b"\xff" * 10, b"a" * 400,
                      b"short:acme:1:" + TOKEN.encode()):
            self.assertIsNone(PortalSession.decode(value), value)

    def test_each_session_has_its_own_csrf_token(self):
        one = PortalSession("portal-" + "x" * 24, None, 1, TOKEN)
        other = PortalSession("portal-" + "x" * 24, None, 1, "B" * 43)
        self.assertNotEqual(one.csrf, other.csrf)
        self.assertNotIn(TOKEN, one.csrf)
        self.assertTrue(same(one.csrf, one.csrf))
        self.assertFalse(same(other.csrf, one.csrf))
        self.assertFalse(same(None, one.csrf))
