"""Tests for remotecomm.portal.charts: bars to scale, labels escaped and kept short."""

import re

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.template import flattenString

from remotecomm.portal.charts import LABEL, VALUE, WIDTH, bar_chart, column_chart


def svg(tag) -> str:
    out = []
    flattenString(None, tag).addCallback(out.append)
    return out[0].decode()


class BarChartTests(SynchronousTestCase):
    def test_the_longest_bar_fills_the_area_and_the_others_scale(self):
        drawn = svg(bar_chart("Time", [("a", 100, "100"), ("b", 50, "50"), ("c", 0, "0")]))
        widths = [int(w) for w in re.findall(r'<rect [^>]*width="(\d+)"', drawn)]
        self.assertEqual(widths, [WIDTH - LABEL - VALUE, (WIDTH - LABEL - VALUE) // 2, 0])
        self.assertIn('role="img"', drawn)
        self.assertIn('aria-label="Time"', drawn)

    def test_labels_are_text_and_kept_short(self):
        hostile = "<img src=x onerror=alert(1)>" + "x" * 40
        drawn = svg(bar_chart("Devices", [(hostile, 1, "1 h")]))
        self.assertNotIn("<img", drawn)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;xxxx", drawn)
        self.assertIn("…</text>", drawn)

    def test_no_bars_is_still_a_chart(self):
        self.assertIn("<svg", svg(bar_chart("Nothing", [])))


class ColumnChartTests(SynchronousTestCase):
    def test_days_are_labelled_as_month_and_day_without_crowding(self):
        days = [(f"2027-01-{d:02d}", d % 3, str(d % 3)) for d in range(1, 32)]
        drawn = svg(column_chart("Per day", days))
        labels = re.findall(r'class="label"[^>]*>(\d\d-\d\d)<', drawn)
        self.assertEqual(labels[0], "01-01")
        self.assertLessEqual(len(labels), 9)
        self.assertEqual(len(re.findall("<rect", drawn)), 31)
        self.assertIn("<title>2027-01-31: 1</title>", drawn)
