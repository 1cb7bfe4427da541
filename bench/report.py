"""The benchmark's output: a table of ratios, the raw numbers as JSON, a chart (PNG)."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

OURS = "remotecomm"
OURS_TLS = "remotecomm (TLS)"


def is_ours(path: str) -> bool:
    """Our system, as measured normally, with TLS, or in a variant (``remotecomm
    (PostgreSQL)``, ``remotecomm (3 relay processes)``): never a baseline."""
    return path == OURS or path.startswith(OURS + " (")


def groups(rows: list[dict]) -> "OrderedDict[tuple[str, str, str], dict[str, dict]]":
    """Rows grouped by (scenario, case, metric), then by path."""
    grouped: OrderedDict = OrderedDict()
    for row in rows:
        grouped.setdefault((row["scenario"], row["case"], row["metric"]), {})[row["path"]] = row
    return grouped


def ratios(rows: list[dict]) -> list[dict]:
    """Ours divided by each baseline, per (scenario, case, metric)."""
    out = []
    for (scenario, case, metric), paths in groups(rows).items():
        mine = paths.get(OURS)
        if mine is None:
            continue
        for path, row in paths.items():
            if is_ours(path) or not row["value"]:
                continue
            out.append({"scenario": scenario, "case": case, "metric": metric,
                        "baseline": path, "ratio": mine["value"] / row["value"],
                        "higher_is_better": mine["higher_is_better"]})
    return out


def _cell(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _spread(row: dict) -> str:
    """`` ±N %``: half the range of a repeated measurement, relative to its median."""
    runs = (row.get("extra") or {}).get("runs") or []
    if len(runs) < 2 or not row["value"]:
        return ""
    return f" ±{50 * (max(runs) - min(runs)) / abs(row['value']):.0f}%"


def compare_table(old_rows: list[dict], new_rows: list[dict]) -> str:
    """Each ratio (ours ÷ a baseline) and each of our own numbers before and after, for
    the cases both runs measured."""
    before = {(r["scenario"], r["case"], r["metric"], r["baseline"]): r["ratio"]
              for r in ratios(old_rows)}
    lines = ["| scenario | case | against | before | after |", "|---|---|---|---|---|"]
    for r in ratios(new_rows):
        key = (r["scenario"], r["case"], r["metric"], r["baseline"])
        if key in before:
            lines.append(f"| {r['scenario']} | {r['case']} | {r['baseline']} | "
                         f"{before[key]:.2f}× | {r['ratio']:.2f}× |")
    old_values = {(r["scenario"], r["case"], r["metric"], r["path"]): r for r in old_rows}
    for row in new_rows:
        if not is_ours(row["path"]):
            continue
        old = old_values.get((row["scenario"], row["case"], row["metric"], row["path"]))
        if old is not None:
            lines.append(f"| {row['scenario']} | {row['case']} | {row['path']} itself | "
                         f"{_cell(old['value'])} {row['unit']} | "
                         f"{_cell(row['value'])} {row['unit']} |")
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict]) -> str:
    """One Markdown table per scenario: our numbers (plain, TLS, variants) and each
    baseline's, with
    ours ÷ baseline in parentheses (medians of repeated runs with ``±`` half their range)."""
    grouped = groups(rows)
    scenarios = list(OrderedDict.fromkeys(key[0] for key in grouped))
    lines = []
    for scenario in scenarios:
        keys = [key for key in grouped if key[0] == scenario]
        variants = list(OrderedDict.fromkeys(
            path for key in keys for path in grouped[key]
            if is_ours(path) and path not in (OURS, OURS_TLS)))
        baselines = list(OrderedDict.fromkeys(
            path for key in keys for path in grouped[key] if not is_ours(path)))
        ours = [OURS, OURS_TLS] + variants
        lines.append(f"\n**{scenario}**\n")
        lines.append("| case | unit | " + " | ".join(ours + baselines) + " |")
        lines.append("|---" * (2 + len(ours) + len(baselines)) + "|")
        for key in keys:
            paths = grouped[key]
            any_row = next(iter(paths.values()))
            mine = paths.get(OURS)
            cells = [_cell(paths[p]["value"]) + _spread(paths[p]) if p in paths else "–"
                     for p in ours]
            for baseline in baselines:
                row = paths.get(baseline)
                if row is None:
                    cells.append("–")
                elif mine is not None and row["value"]:
                    cells.append(f"{_cell(row['value'])}{_spread(row)} "
                                 f"({mine['value'] / row['value']:.2f}×)")
                else:
                    cells.append(_cell(row["value"]) + _spread(row))
            better = "↑" if any_row["higher_is_better"] else "↓"
            lines.append(f"| {key[1]} | {any_row['unit']} {better} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, rows: list[dict], meta: dict) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": rows, "ratios": ratios(rows)},
                               indent=2) + "\n")


def draw_chart(path: Path, rows: list[dict]) -> bool:
    """How many times better than each baseline we are, per case (above 1: better; for
    lower-is-better metrics the ratio is turned over), one panel per scenario, log scale;
    False without matplotlib."""
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    data = ratios(rows)
    scenarios = list(OrderedDict.fromkeys(r["scenario"] for r in data))
    if not scenarios:
        return False
    figure, axes = plt.subplots(len(scenarios), 1, figsize=(11, 3.2 * len(scenarios)),
                                squeeze=False)
    for axis, scenario in zip(axes[:, 0], scenarios, strict=True):
        entries = [r for r in data if r["scenario"] == scenario]
        cases = list(OrderedDict.fromkeys(f"{r['case']} ({r['metric']})" for r in entries))
        baselines = list(OrderedDict.fromkeys(r["baseline"] for r in entries))
        width = 0.8 / max(1, len(baselines))
        for index, baseline in enumerate(baselines):
            xs, ys = [], []
            for position, case in enumerate(cases):
                match = [r for r in entries if f"{r['case']} ({r['metric']})" == case
                         and r["baseline"] == baseline]
                if match:
                    ratio = match[0]["ratio"]
                    xs.append(position + index * width)
                    ys.append(ratio if match[0]["higher_is_better"] else 1 / ratio)
            axis.bar(xs, ys, width, label=baseline)
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_yscale("log")
        axis.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10,
                                                                  subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
            lambda value, _: f"{value:g}×"))
        axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xticks([p + 0.4 - width / 2 for p in range(len(cases))])
        axis.set_xticklabels(cases, rotation=12, fontsize=8)
        axis.set_title(f"{scenario}: remotecomm against each baseline (above 1×: better)",
                       fontsize=10)
        axis.legend(fontsize=7, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True
