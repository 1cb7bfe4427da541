"""Tests for the benchmark (bench/): its arithmetic, and the smoke version run for real."""

import json
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bench import report
from bench.measure import percentile
from remotecomm.testing.processes import run_command

REPO = Path(__file__).resolve().parents[2]


def row(path, value, scenario="1-bulk", case="1 MiB up", metric="throughput",
        higher=True):
    return {"scenario": scenario, "case": case, "path": path, "metric": metric,
            "value": value, "unit": "MB/s", "higher_is_better": higher, "extra": {}}


class ReportTests(SynchronousTestCase):
    """Percentiles, ratios and the table."""

    def test_percentile_is_nearest_rank(self):
        values = list(range(1, 101))
        self.assertEqual((percentile(values, 0.5), percentile(values, 0.99)), (50, 99))
        self.assertEqual(percentile([7.0], 0.99), 7.0)

    def test_ratios_are_ours_over_each_baseline(self):
        rows = [row("remotecomm", 300), row("remotecomm (TLS)", 200), row("socat", 1200),
                row("websockify", 100)]
        self.assertEqual({r["baseline"]: r["ratio"] for r in report.ratios(rows)},
                         {"socat": 0.25, "websockify": 3.0})

    def test_table_shows_values_and_ratios(self):
        table = report.markdown_table([row("remotecomm", 300), row("socat", 1200)])
        self.assertIn("| 1 MiB up | MB/s ↑ | 300 | – | 1,200 (0.25×) |", table)


    def test_repeated_runs_show_their_median_and_spread(self):
        from bench.scenarios import Results
        results = Results()
        results.add_repeated("1-bulk", "1 MiB up", "remotecomm", "throughput", [330, 300, 270],
                             "MB/s")
        rows = results.as_json() + [row("socat", 1200)]
        self.assertEqual(rows[0]["value"], 300)
        self.assertIn("| 1 MiB up | MB/s ↑ | 300 ±10% | – | 1,200 (0.25×) |",
                      report.markdown_table(rows))

    def test_compare_shows_each_ratio_before_and_after(self):
        before = [row("remotecomm", 300), row("socat", 1200)]
        after = [row("remotecomm", 600), row("socat", 1200)]
        table = report.compare_table(before, after)
        self.assertIn("| 1-bulk | 1 MiB up | socat | 0.25× | 0.50× |", table)
        self.assertIn("| 1-bulk | 1 MiB up | remotecomm itself | 300 MB/s | 600 MB/s |", table)


class SmokeTests(TestCase):
    """``python -m bench --quick``: one real session, one baseline, no ratio asserted."""

    timeout = 30

    async def test_quick_run_writes_results_and_checks_the_logs(self):
        out = Path(self.mktemp()).absolute()
        code, output = await run_command(reactor, [sys.executable, "-m", "bench", "--quick",
                                                   "--no-tls", "--out", str(out)],
                                         cwd=str(REPO), timeout=27)
        self.assertEqual(code, 0, output[-3000:])
        # Its work folder is gone (kept only with --keep).
        work = output.split("work in ")[1].split()[0].rstrip(",")
        self.assertFalse(Path(work).exists(), work)
        results = json.loads((out / "results.json").read_text())
        paths = {(r["scenario"], r["path"]) for r in results["rows"]}
        for scenario in ("1-bulk", "2-round-trip"):
            self.assertIn((scenario, "remotecomm"), paths)
            self.assertIn((scenario, "direct TCP"), paths)
        self.assertTrue(all(r["value"] > 0 for r in results["rows"]))
        self.assertEqual([note.endswith(": ok") for note in results["meta"]["notes"]],
                         [True, True])
        self.assertIn("remotecomm", (out / "table.md").read_text())
