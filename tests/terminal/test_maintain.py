"""Tests for remotecomm.terminal.maintain: the words of `remotecomm maintain`, and its output."""

import io

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.command_line import EXIT_USAGE, CliError
from remotecomm.terminal import main as cli
from remotecomm.terminal.maintain import format_result, job_body


class MaintainTests(SynchronousTestCase):
    def test_words_become_a_job(self):
        self.assertEqual(job_body(["counters"]), {"action": "counters"})
        self.assertEqual(job_body(["config", "set", "sleep_minutes", "30"]),
                         {"action": "config-set", "key": "sleep_minutes", "value": "30"})
        self.assertEqual(job_body(["config", "get", "language"]),
                         {"action": "config-get", "key": "language"})
        for words in (["config"], ["config", "set", "x"], ["reboot"], ["counters", "now"]):
            with self.assertRaises(CliError) as e:
                job_body(words)
            self.assertEqual(e.exception.exit_code, EXIT_USAGE, words)

    def test_arguments(self):
        self.patch(cli.sys, "stderr", io.StringIO())
        args = cli.build_parser().parse_args(["maintain", "mfp-1", "counters", "--wait-online"])
        self.assertEqual((args.device_id, args.what, args.wait_online),
                         ("mfp-1", ["counters"], 86400))
        for argv in (["maintain", "MFP", "counters"], ["maintain", "mfp-1"],
                     ["maintain", "mfp-1", "counters", "--wait-online", "0"],
                     ["jobs", "--cancel", "not-a-job"]):
            with self.assertRaises(SystemExit):
                cli.build_parser().parse_args(argv)

    def test_results_as_text(self):
        self.assertEqual(format_result("counters", {"printed": {"total": 10, "mono": 7,
                                                                "colour": 3},
                                                    "faxed": {"total": 2}}),
                         ["COUNTER  TOTAL  MONO  COLOUR", "printed  10     7     3",
                          "faxed    2"])
        self.assertEqual(format_result("config-set", {"sleep_minutes": "30",
                                                      "previous": "15"}),
                         ["sleep_minutes = 30", "(was 15)"])
        self.assertEqual(format_result("supplies", {"toner": {"black": 4}, "paper": {},
                                                    "status": "toner-empty",
                                                    "error": "empty"})[2],
                         "Status: toner-empty (empty)")
        self.assertEqual(format_result("log", {"lines": ["a", "b"]}), ["a", "b"])
