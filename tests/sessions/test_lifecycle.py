"""Tests for remotecomm.sessions.lifecycle: every path and timeout."""

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.sessions import lifecycle as lc

S = 1_000_000
POLICY = lc.SessionPolicy(approval_timeout_us=120 * S, join_window_us=120 * S,
                          max_lifetime_us=8 * 3600 * S, idle_timeout_us=900 * S)


def pending(at=0):
    return lc.request("r-1", at, POLICY)


class LifecycleTests(SynchronousTestCase):
    """Each event moves a session only where the rules allow."""

    def test_request_is_pending_with_an_approval_deadline(self):
        """S141: a new request waits for the operator, for 120 s."""
        session = pending(at=10 * S)
        self.assertEqual((session.state, session.approval_deadline_us), (lc.PENDING, 130 * S))
        self.assertEqual(session.next_deadline_us(), 130 * S)

    def test_yes_then_allocation_approves(self):
        """S144 YES then S147: approved, with join window and lifetime from that moment."""
        session = lc.decide(pending(), True, "op", False, 5 * S, allow_test_approver=False)
        self.assertEqual((session.state, session.approver, session.decided_us),
                         (lc.ALLOCATING, "op", 5 * S))
        session = lc.allocated(session, 6 * S, POLICY)
        self.assertEqual(session.state, lc.APPROVED)
        self.assertEqual(session.join_deadline_us, 126 * S)
        self.assertEqual(session.lifetime_deadline_us, 6 * S + 8 * 3600 * S)
        self.assertEqual(session.idle_timeout_us, 900 * S)

    def test_no_ends_refused_with_the_operator(self):
        """S144 NO: refused, naming who refused; no token, no session ID."""
        session = lc.decide(pending(), False, "op", False, 5 * S, allow_test_approver=False)
        self.assertEqual((session.state, session.end_reason, session.approver, session.ended_us),
                         (lc.ENDED, "refused", "op", 5 * S))

    def test_every_end_but_a_normal_one_says_why_in_words(self):
        """end_detail is filled wherever a reason has one; a specific detail wins."""
        for reason in lc.END_REASONS:
            ended = lc.end(pending(), reason, 5 * S)
            if reason == "normal":
                self.assertIsNone(ended.end_detail)
            else:
                self.assertTrue(ended.end_detail, reason)
        self.assertEqual(lc.end(pending(), "error", 5 * S, "the relay gave no ID").end_detail,
                         "the relay gave no ID")

    def test_both_ends_name_the_side_that_went_wrong(self):
        """The first abnormal side decides the reason; its relay detail becomes the session's."""
        active = lc.activate(lc.allocated(lc.decide(pending(), True, "op", False, 5 * S,
                                                    allow_test_approver=False), 6 * S, POLICY))
        ended = lc.both_sides_ended(active, 9 * S, (("device", "normal", None),
                                                     ("terminal", "error", "bad frame: x")))
        self.assertEqual((ended.end_reason, ended.end_detail),
                         ("error", "terminal side: bad frame: x"))
        self.assertIsNone(lc.both_sides_ended(active, 9 * S, (
            ("device", "normal", None), ("terminal", "normal", None))).end_detail)

    def test_no_answer_in_time_is_no(self):
        """The approval deadline ends a pending session as approval-timeout."""
        session = pending()
        self.assertIs(lc.deadline_passed(session, 119 * S), session)
        ended = lc.deadline_passed(session, 120 * S)
        self.assertEqual((ended.state, ended.end_reason), (lc.ENDED, "approval-timeout"))

    def test_late_answer_is_a_timeout_even_if_yes(self):
        """A YES after the deadline does not approve (fail closed)."""
        session = lc.decide(pending(), True, "op", False, 120 * S, allow_test_approver=False)
        self.assertEqual(session.end_reason, "approval-timeout")

    def test_test_approver_refused_unless_allowed(self):
        """A test approver's YES is refused by a manager that does not allow it."""
        refused = lc.decide(pending(), True, "test", True, 1 * S, allow_test_approver=False)
        self.assertEqual((refused.end_reason, refused.end_detail, refused.approved_by_test_approver),
                         ("refused", "test-approver-not-allowed", True))
        allowed = lc.decide(pending(), True, "test", True, 1 * S, allow_test_approver=True)
        self.assertEqual((allowed.state, allowed.approved_by_test_approver), (lc.ALLOCATING, True))

    def test_unjoined_session_expires(self):
        """Approved but not joined within the join window: expired."""
        session = lc.allocated(lc.decide(pending(), True, "op", False, 0, False), 0, POLICY)
        self.assertIs(lc.deadline_passed(session, 119 * S), session)
        ended = lc.deadline_passed(session, 120 * S)
        self.assertEqual(ended.end_reason, "expired")

    def test_device_offline_and_errors(self):
        """Any open session can end for device-offline or error."""
        offline = lc.end(pending(), "device-offline", 1 * S)
        self.assertEqual((offline.state, offline.end_reason), (lc.ENDED, "device-offline"))
        allocating = lc.decide(pending(), True, "op", False, 0, False)
        self.assertEqual(lc.end(allocating, "error", 1 * S).end_reason, "error")

    def test_every_open_state_has_a_deadline(self):
        """The manager can always end a session, whatever a relay does (issue: no pair is
        ever locked)."""
        allocating = lc.decide(pending(), True, "op", False, 0, False)
        approved = lc.allocated(allocating, 0, POLICY)
        active = lc.activate(approved)
        for session in (pending(), allocating, approved, active):
            self.assertIsNotNone(session.next_deadline_us(), session.state)

    def test_an_active_session_past_lifetime_and_grace_ends_relay_lost(self):
        """No end logs by the maximum lifetime plus the grace: the relay is lost."""
        active = lc.activate(lc.allocated(lc.decide(pending(), True, "op", False, 0, False),
                                          0, POLICY))
        deadline = 8 * 3600 * S + lc.LIFETIME_GRACE_US
        self.assertEqual(active.next_deadline_us(), deadline)
        self.assertIs(lc.deadline_passed(active, deadline - 1), active)
        ended = lc.deadline_passed(active, deadline)
        self.assertEqual((ended.state, ended.end_reason), (lc.ENDED, "relay-lost"))
        # Late end logs change nothing any more.
        late = lc.both_sides_ended(ended, deadline + 1, (("device", "normal", None),
                                                         ("terminal", "normal", None)))
        self.assertIs(late, ended)

    def test_a_stuck_allocation_ends_as_an_error(self):
        allocating = lc.decide(pending(), True, "op", False, 0, False)
        ended = lc.deadline_passed(allocating, 120 * S + lc.ALLOCATION_GRACE_US)
        self.assertEqual((ended.end_reason, ended.end_detail),
                         ("error", "the relay did not allocate the session in time"))

    def test_cancel_before_the_session_runs(self):
        """The terminal may withdraw a pending, allocating or approved request: cancelled."""
        allocating = lc.decide(pending(), True, "op", False, 0, False)
        approved = lc.allocated(allocating, 0, POLICY)
        for session in (pending(), allocating, approved):
            self.assertEqual(lc.cancel(session, 1 * S).end_reason, "cancelled")
        with self.assertRaises(lc.InvalidTransition):
            lc.cancel(lc.activate(approved), 1 * S)

    def test_new_reasons_are_in_the_fixed_list(self):
        """DECISIONS lists cancelled and ended-by-device; both end a session."""
        for reason in ("cancelled", "ended-by-device"):
            self.assertEqual(lc.end(pending(), reason, 1).end_reason, reason)

    def test_ended_sessions_do_not_move(self):
        """Nothing reopens an ended session."""
        ended = lc.end(pending(), "refused", 1 * S)
        for event in (lambda s: lc.decide(s, True, "op", False, 2 * S, False),
                      lambda s: lc.allocated(s, 2 * S, POLICY),
                      lambda s: lc.end(s, "error", 2 * S)):
            with self.assertRaises(lc.InvalidTransition):
                event(ended)
        self.assertIs(lc.deadline_passed(ended, 10**12), ended)
        self.assertIsNone(ended.next_deadline_us())

    def test_wrong_state_events_are_refused(self):
        """A second answer, or an allocation without a YES, is invalid."""
        allocating = lc.decide(pending(), True, "op", False, 0, False)
        with self.assertRaises(lc.InvalidTransition):
            lc.decide(allocating, False, "op", False, 1, False)
        with self.assertRaises(lc.InvalidTransition):
            lc.allocated(pending(), 0, POLICY)

    def test_unknown_end_reason_is_a_bug(self):
        """End reasons come from the fixed list."""
        with self.assertRaises(ValueError):
            lc.end(pending(), "bored", 0)

    def test_restart_rearms_or_ends(self):
        """After a restart: an interrupted allocation is an error; deadlines still hold."""
        allocating = lc.decide(pending(), True, "op", False, 0, False)
        self.assertEqual(lc.restarted(allocating, 1 * S).end_reason, "error")
        self.assertEqual(lc.restarted(pending(), 50 * S).state, lc.PENDING)
        self.assertEqual(lc.restarted(pending(), 200 * S).end_reason, "approval-timeout")

    def test_lifetime_is_capped_at_twelve_hours(self):
        """No configuration can make a session live longer than 12 h."""
        with self.assertRaises(ValueError):
            lc.SessionPolicy(1, 1, 13 * 3600 * S, 1)
