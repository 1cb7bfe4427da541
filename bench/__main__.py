"""``python -m bench``: every scenario against our system and its baselines, in one run.

Run it with ``scripts/bench`` (which installs the baselines first)::

    scripts/bench                  # the full run (about 13 minutes, at most 20), into bench-results/
    scripts/bench --quick          # the smoke version (seconds): one session, one baseline
    scripts/bench --compare OLD/results.json   # each ratio before and after

It starts the shipped ``twistd remotecomm`` with its normal configuration,
changing only what a scenario names: plain WebSockets for the ratios, then
scenario 4 again with the manager's store on PostgreSQL and with the relay
apart in one or three processes (``--no-variants`` skips these), then again
with TLS.  Everything runs on 127.0.0.0/8.  It prints the table,
writes ``results.json`` (raw numbers, ratios, machine and versions),
``table.md`` and ``chart.png``, and finally checks ``/metrics``: started
logs = 2 × set-ups, and after teardown end logs = 2 × set-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from bench import baselines as bl, report, reports as report_scenario, scenarios as sc
from bench.system import BenchSystem, raise_fd_limit
from remotecomm.testing import databases
from remotecomm.testing.processes import free_port, sleep


def machine() -> dict:
    """Which machine and versions produced the numbers."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {name: metadata.version(name) for name in
                ("Twisted", "autobahn", "h11", "remotecomm")}
    for tool, args in (("socat", ["-V"]), ("wrk", ["-v"])):
        try:
            out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=5)
            lines = (out.stdout + out.stderr).strip().splitlines()
            versions[tool] = next((line for line in lines if "version" in line), lines[0])[:80]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions[tool] = "missing"
    pip = bl.BASELINES_VENV / "bin" / "pip"
    if pip.exists():
        frozen = subprocess.run([str(pip), "freeze"], capture_output=True, text=True).stdout
        for line in frozen.splitlines():
            if line.lower().startswith(("magic-wormhole-transit-relay", "websockify")):
                name, _, version = line.partition("==")
                versions[name] = version
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "versions": versions,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


async def check_logs(system: BenchSystem, results: sc.Results, phase: str) -> None:
    """/metrics: started logs = 2 × set-ups (and after teardown, end logs too)."""
    want = 2 * system.setups
    kinds = ["started"] + (["ended"] if phase == "after teardown" else [])
    for _ in range(100):
        values = await system.relay_metrics()
        got = {kind: values.get(f'remotecomm_relay_logs_written_total{{kind="{kind}"}}',
                                values.get(f'remotecomm_relay_logs_written{{kind="{kind}"}}'))
               for kind in kinds}
        if all(v == want for v in got.values()):
            break
        await sleep(system.reactor, 0.2)
    verdict = "ok" if all(v == want for v in got.values()) else "MISMATCH"
    line = (f"/metrics {phase} ({sc.ours(system)}): {system.setups} set-ups, logs written "
            f"{got}, want {want} each: {verdict}")
    print(line, flush=True)
    results.notes.append(line)
    if verdict != "ok":
        raise RuntimeError(line)


async def run_baselines(reactor, folder: Path, results: sc.Results, quick: bool,
                        setups: int, idle: int, setups_only: bool = False) -> dict:
    started = {}
    wanted = [bl.DirectTcp()] if quick else [
        bl.DirectTcp(), bl.DirectWebSocket(), bl.Socat(), bl.TransitRelay(False),
        bl.TransitRelay(True), bl.Websockify()]
    if setups_only:
        wanted = [bl.TransitRelay(False), bl.TransitRelay(True)]
    elif not quick:
        print("machine limit: iperf3", flush=True)
        await sc.machine_limit(results, reactor)
    for baseline in wanted:
        print(f"baseline: {baseline.name}", flush=True)
        await baseline.start(reactor, folder)
        started[baseline.name] = baseline
        if not setups_only:
            await sc.bulk_and_round_trips(results, baseline, quick=quick)
    if not quick:
        for name in ("transit relay TCP", "transit relay WebSocket"):
            await sc.baseline_setup_rate(results, started[name], setups)
            if idle:
                await sc.baseline_idle_memory(results, started[name], idle)
    return started


def bench_size(pairs: int) -> tuple[int, int]:
    """Bench devices and terminals for ``pairs`` distinct (device, terminal) pairs: up to 40
    devices, a device per 50 pairs, and as many terminals as it takes."""
    devices = max(2, min(40, pairs // 50 + 1))
    return devices, -(-pairs // devices)


async def run_ours(reactor, folder: Path, results: sc.Results, *, tls: bool, quick: bool,
                   setups: int, idle: int, started: dict, setups_only: bool = False) -> None:
    pairs = 1 + sc.REPEATS * setups + idle
    devices, terminals = (1, 1) if quick else bench_size(pairs)
    app_ports = {"web-server": free_port(), "remote-panel": free_port()}
    system = BenchSystem(reactor, folder / ("tls" if tls else "plain"), tls=tls,
                         devices=devices, terminals=terminals,
                         real_device=None if quick else "mfp-real")
    print(f"our system ({'TLS' if tls else 'plain WebSockets'}): {devices} bench devices, "
          f"{terminals} terminals", flush=True)
    sessions = []
    try:
        await system.start({app: f"http://127.0.0.1:{port}" for app, port in app_ports.items()})
        if setups_only:
            await sc.setup_rate(results, system, setups)
        else:
            await sc.bulk_and_round_trips(results, system, quick=quick)
        if not quick and not setups_only:
            real = sc.RealSession(system, "mfp-real", app_ports)
            await real.start()
            await real.upload_firmware(64 * 1024)
            url, headers = real.wrk_target
            await sc.http_rates(results, reactor, sc.ours(system), url, headers,
                                quick=quick)
            if not tls:
                direct = f"http://127.0.0.1:{app_ports['web-server']}"
                await sc.http_rates(results, reactor, "direct to the app", direct, {},
                                    quick=quick)
                tunnel = sc.TransitTunnel(reactor, started["transit relay TCP"],
                                          app_ports["web-server"])
                port = await tunnel.listen()
                await sc.http_rates(results, reactor, "transit relay TCP tunnel",
                                    f"http://127.0.0.1:{port}", {}, quick=quick)
                await tunnel.stop()
            await sc.large_transfer(results, real, quick=quick)
            if not tls:
                await sc.direct_large_transfer(results, reactor, app_ports["web-server"],
                                               quick=quick)
            await real.stop()
            await sc.setup_rate(results, system, setups)
            if idle and not tls:
                sessions += await sc.idle_memory(results, system, idle)
        await check_logs(system, results, "after set-up")
        await sc.timed_concurrently(len(sessions), 64, lambda i: system.end(sessions[i]))
        await check_logs(system, results, "after teardown")
    finally:
        await system.stop()


SETUP_VARIANTS = (("PostgreSQL", {"postgresql": True}),
                  ("1 relay process", {"relays": 1}),
                  ("3 relay processes", {"relays": 3}),
                  ("3 relay processes, PostgreSQL", {"relays": 3, "postgresql": True}))


async def run_setup_variants(reactor, folder: Path, results: sc.Results, setups: int,
                             postgresql_server: str) -> None:
    """Scenario 4 again (plain WebSockets) with the manager's store on PostgreSQL, and with
    the relay apart in one or three processes (the manager places sessions on the least
    loaded): beside the normal run's numbers in the same table."""
    devices, terminals = bench_size(sc.REPEATS * setups + 1)
    for variant, options in SETUP_VARIANTS:
        store_url = databases.create(postgresql_server) if options.get("postgresql") else None
        nodes = tuple(f"relay-{chr(ord('a') + n)}" for n in range(options.get("relays", 0)))
        system = BenchSystem(reactor, folder / variant.replace(" ", "-").replace(",", ""),
                             tls=False, devices=devices, terminals=terminals,
                             relays=nodes, store_url=store_url, lost_after="60s",
                             variant=variant)
        print(f"scenario 4 on our system: {variant}", flush=True)
        try:
            await system.start()
            await sc.setup_rate(results, system, setups)
            await check_logs(system, results, "after teardown")
        finally:
            await system.stop()
            if store_url:
                databases.drop(store_url)


def added_over_direct_websocket(results: sc.Results) -> None:
    """Scenario 2's headline: what our relay adds to a round trip over a direct WebSocket
    between the same clients."""
    rows = {(r.case, r.path): r.value for r in results.rows if r.scenario == "2-round-trip"}
    for case in ("100 B p50", "100 B p99"):
        direct = rows.get((case, "direct WebSocket"))
        for path in ("remotecomm", "remotecomm (TLS)"):
            if direct is not None and (case, path) in rows:
                results.add("2-round-trip", f"{case} added over direct WebSocket", path,
                            "added", rows[(case, path)] - direct, "µs",
                            higher_is_better=False)


async def main(reactor, args) -> None:
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="remotecomm-bench-"))
    limit = raise_fd_limit()
    # Each idle session holds two sockets in this process (both bench ends) and two in the
    # relay's: scenario 5 runs as many as fit under the open-file limit, up to --idle.
    fits = max(0, (limit - 1000) // 2 // 1000 * 1000)
    if args.idle > fits:
        print(f"scenario 5: {args.idle} sessions do not fit under the open-file limit of "
              f"{limit}; measuring {fits}", flush=True)
        args.idle = fits
    meta = machine()
    meta.update(quick=args.quick, fd_limit=limit, setups=args.setups, idle=args.idle)
    print(f"remotecomm benchmark on {meta['cpu']} ({meta['cores']} cores), work in {folder}",
          flush=True)
    results = sc.Results()
    started_at = time.monotonic()
    try:
        baselines = await run_baselines(reactor, folder, results, args.quick, args.setups,
                                        0 if args.quick else args.idle, args.setups_only)
        try:
            await run_ours(reactor, folder, results, tls=False, quick=args.quick,
                           setups=args.setups, idle=0 if args.quick else args.idle,
                           started=baselines, setups_only=args.setups_only)
            if args.setups and not args.no_variants:
                await run_setup_variants(reactor, folder, results, args.setups,
                                         databases.postgresql_server())
            if not args.no_tls:
                await run_ours(reactor, folder, results, tls=True, quick=args.quick,
                               setups=args.setups, idle=0, started=baselines,
                               setups_only=args.setups_only)
        finally:
            for baseline in baselines.values():
                await baseline.stop()
        if not args.setups_only:
            report_scenario.report_speed(results, folder, quick=args.quick)
    except BaseException:
        if not args.keep:
            print(f"the benchmark failed; run it again with --keep to keep its work folder "
                  f"(process logs) at {folder}", flush=True)
        raise
    finally:
        if args.keep:
            print(f"work folder kept: {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    added_over_direct_websocket(results)
    meta["seconds"] = round(time.monotonic() - started_at, 1)
    meta["notes"] = results.notes
    write_outputs(out, results.as_json(), meta, args.compare)


def write_outputs(out: Path, rows: list[dict], meta: dict, compare: str | None = None) -> None:
    """results.json, table.md and chart.png in ``out``; the table printed."""
    report.write_json(out / "results.json", rows, meta)
    table = report.markdown_table(rows)
    (out / "table.md").write_text(table)
    charted = report.draw_chart(out / "chart.png", rows)
    print(table)
    if compare:
        before = json.loads(Path(compare).read_text())
        comparison = report.compare_table(before["rows"], rows)
        (out / "compare.md").write_text(comparison)
        print(f"before ({compare}, {before['meta'].get('date', '?')}) and after:\n"
              + comparison)
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}"
          + (f", {out / 'chart.png'}" if charted else " (no chart: matplotlib is missing)")
          + f" ({meta.get('seconds', '?')} s of measuring)", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the smoke version: one session, one baseline, small sizes")
    parser.add_argument("--out", default="bench-results", help="where results go")
    parser.add_argument("--setups", type=int, default=300,
                        help="sessions joined in scenario 4 (default 300)")
    parser.add_argument("--idle", type=int, default=10000,
                        help="idle paired sessions in scenario 5 (default 10000; 0 skips)")
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS pass")
    parser.add_argument("--setups-only", action="store_true",
                        help="only scenario 4: the transit relay's set-ups, ours and its "
                             "variants (about 2 minutes)")
    parser.add_argument("--no-variants", action="store_true",
                        help="skip scenario 4 on PostgreSQL and with relay processes apart")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (process logs, ~200 MB) in the temp "
                             "directory; without it nothing is left there")
    parser.add_argument("--report", metavar="RESULTS_JSON",
                        help="only redraw the table and chart of an earlier run into --out")
    parser.add_argument("--compare", metavar="OLD_JSON",
                        help="print each ratio before (an earlier results.json) and after, "
                             "also as compare.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.setups = 0
    if args.setups_only and not args.setups:
        parser.error("--setups-only needs --setups above 0 (and no --quick)")
    if not 0 <= args.setups <= 5000 or not 0 <= args.idle <= 10000:
        parser.error("--setups must be 0–5000 and --idle 0–10000")
    return args


def redraw(args: argparse.Namespace) -> None:
    earlier = json.loads(Path(args.report).read_text())
    results = sc.Results()
    results.rows = [sc.Row(**row) for row in earlier["rows"]
                    if not row["case"].endswith("added over direct WebSocket")]
    added_over_direct_websocket(results)
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, results.as_json(), earlier["meta"], args.compare)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if arguments.report:
        redraw(arguments)
    else:
        react(lambda reactor: ensureDeferred(main(reactor, arguments)))
