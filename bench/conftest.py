"""Benchmark fixtures and the rate summary.

Every benchmark records the thread settings (OMP_NUM_THREADS, the engine's thread count, ...) in
benchmark.extra_info. pytest-benchmark's own table shows times only, so after it this file prints one
compact table per group: rows = size (or kernel), columns = implementation, cells = GFLOP/s or Gelem/s,
plus speed ratios such as cpu/numpy (> 1: cpu is faster). The rates come from bench/_util.timed().

    pytest bench --benchmark-only --benchmark-group-by=group
    pytest bench/bench_matmul.py --benchmark-only --benchmark-group-by=param:n
    pytest bench --benchmark-only --bench-rate-stat=median     # rates from the median time
    pytest bench --benchmark-disable -q                        # CI: each benchmark runs once, as a test
"""
import pytest

from _util import thread_info

# Speed ratios shown when both columns are in a group's table: (numerator, denominator).
RATIOS = [("cpu", "numpy"), ("cpu", "ref"), ("cpu", "torch"), ("v4", "v1"), ("v4", "numpy")]
# Column order; other implementations follow in the order they were seen.
COLUMNS = ["v1", "v2", "v3", "v4", "ref", "cpu", "cuda", "numpy", "torch"]


def pytest_addoption(parser):
    parser.addoption("--bench-rate-stat", choices=["mean", "median"], default="mean",
                     help="time statistic the GFLOP/s and Gelem/s summary tables use (default: mean)")


def pytest_report_header(config):
    info = thread_info()
    return "bench threads: " + ", ".join(f"{k}={v}" for k, v in info.items())


@pytest.fixture(autouse=True)
def _record_threads(request):
    """Put the thread settings in every benchmark's extra_info (they decide the numbers)."""
    if "benchmark" in request.fixturenames:
        request.getfixturevalue("benchmark").extra_info.update(thread_info())
    yield


def _fmt(value):
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _tables(benchmarks, stat):
    """{group: (unit, row_name, {row: (order, {impl: rate})})} from the benchmarks that recorded a rate."""
    groups = {}
    for bench in benchmarks:
        info = bench.extra_info
        if "work" not in info or not bench.stats:
            continue
        seconds = getattr(bench.stats, stat)
        if not seconds:
            continue
        unit, _, rows = groups.setdefault(bench.group or "(no group)",
                                          (info["rate_unit"], info.get("row_name", "size"), {}))
        _, cells = rows.setdefault(info["row"], (info.get("order", 0), {}))
        cells[info["impl"]] = info["work"] / seconds / 1e9
    return groups


def _render(group, unit, row_name, rows, stat):
    impls = {impl for _, cells in rows.values() for impl in cells}
    columns = [c for c in COLUMNS if c in impls] + sorted(impls - set(COLUMNS))
    ratios = [(a, b) for a, b in RATIOS if a in impls and b in impls]
    head = [row_name] + columns + [f"{a}/{b}" for a, b in ratios]
    body = []
    for row, (_, cells) in sorted(rows.items(), key=lambda item: (item[1][0], item[0])):
        line = [row] + [_fmt(cells.get(c)) for c in columns]
        for a, b in ratios:
            line.append(f"{cells[a] / cells[b]:.2f}" if a in cells and b in cells else "-")
        body.append(line)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    out = [f"{group}: {unit} (work / {stat} time; higher is faster; a/b = speed of a over b)"]
    for line in [head] + body:
        out.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                             enumerate(zip(line, widths))))
    return out


@pytest.hookimpl(trylast=True)                       # after pytest-benchmark's own table
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "benchmarks", None):
        return
    stat = config.getoption("--bench-rate-stat", default="mean")
    groups = _tables(session.benchmarks, stat)
    if not groups:
        return
    terminalreporter.write_sep("-", "rate summary")
    terminalreporter.write_line("threads: " + ", ".join(f"{k}={v}" for k, v in thread_info().items()))
    for group in sorted(groups):
        terminalreporter.write_line("")
        for line in _render(group, *groups[group], stat):
            terminalreporter.write_line(line)
