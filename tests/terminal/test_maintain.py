"""Tests for remotecomm.terminal.maintain: the words of `remotecomm maintain`, and its output."""

import io

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.command_line import EXIT_USAGE, CliError
from remotecomm.terminal import main as cli
from remotecomm.terminal.maintain import format_result, job_body
from remotecomm.terminal.progress import ProgressBar, progress_line


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

    def test_firmware_words_name_a_file_and_need_a_version(self):
        self.assertEqual(job_body(["firmware", "image.bin"]),
                         {"action": "firmware", "file": "image.bin"})
        self.patch(cli.sys, "stderr", io.StringIO())
        args = cli.build_parser().parse_args(["maintain", "mfp-1", "firmware", "a.bin",
                                              "--version", "4.3.0"])
        self.assertEqual(args.image_version, "4.3.0")
        with self.assertRaises(SystemExit):
            cli.build_parser().parse_args(["maintain", "mfp-1", "firmware", "a.bin",
                                           "--version", "4.3 beta"])
        self.assertEqual(format_result("firmware", {"version": "4.3.0", "previous": "4.2.1"}),
                         ["Firmware 4.3.0 installed (was 4.2.1); the device restarted."])


class ProgressBarTests(SynchronousTestCase):
    def test_the_line_fits_any_width(self):
        for width in (20, 37, 80, 200):
            line = progress_line("uploading", 45, 3 * 2**20, width)
            self.assertLessEqual(len(line), width, width)
            self.assertIn("45%", line)
        self.assertIn("3.0 MiB/s", progress_line("uploading", 45, 3 * 2**20, 80))
        self.assertEqual(progress_line("up", 50, None, 30), "up [#########..........]  50%")

    def test_it_redraws_at_the_new_width_after_a_resize(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        screen, now, width = Terminal(), [0.0], [80]
        bar = ProgressBar(screen, "uploading", clock=lambda: now[0], width=lambda: width[0])
        bar.update(10, 1000)
        now[0], width[0] = 1.0, 30
        bar.update(50, 5000)
        bar.close()
        lines = screen.getvalue().split("\r\x1b[K")[1:]
        self.assertEqual([len(line.rstrip("\n")) <= w for line, w in zip(lines, (80, 30))],
                         [True, True])
        self.assertTrue(screen.getvalue().endswith("\n"))

    def test_a_pipe_gets_no_bar(self):
        out = io.StringIO()
        bar = ProgressBar(out, "uploading")
        bar.update(50, 10)
        bar.close()
        self.assertEqual(out.getvalue(), "")
