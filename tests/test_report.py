"""Report: tables, figures and README from a synthetic results table (no dependence on slaf_approx.fit).

The table is made here with numpy: Chebyshev interpolants stand in for the fits (first-kind points for
"lstsq", second-kind points for "minimax", perturbed interpolants for "gradient"), each in the chebyshev
basis (mapped variable) and the power basis (raw variable), with errors measured on a dense grid.
"""

import csv
import json
import math
import re

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C

from slaf_approx import report, theory
from slaf_approx.bases import SlafPolynomial, from_mapped
from slaf_approx.targets import get_target

FIELDS = ["target", "basis", "variable", "degree", "lo", "hi", "method", "coefficients", "max_error",
          "rms_error", "levelled_error", "iterations", "converged", "note", "seconds", "condition_number",
          "weight", "params", "max_error_at", "gap", "history"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
META = {"machine": "test-box (x86_64), 2 cores", "python": "3.11.9", "numpy": np.__version__,
        "date": "2026-01-01 00:00 UTC", "command": "pytest", "seconds": "1.5"}


def _errors(f, p, lo, hi):
    x = np.linspace(lo, hi, 4001)
    e = f(x) - p(x)
    i = int(np.argmax(np.abs(e)))
    return float(abs(e[i])), float(np.sqrt(np.mean(e**2))), float(x[i]), float(np.mean(e**2))


def make_rows(name, lo=-1.0, hi=1.0, degrees=range(1, 7), bases=("chebyshev", "power"), seed=0):
    """Rows with every FitRecord field for `name` (a catalogue target) on [lo, hi]."""
    tg = get_target(name)
    f = lambda x: np.asarray(tg(x), dtype=float)  # noqa: E731
    ft = lambda t: f(from_mapped(t, lo, hi))  # noqa: E731
    rng = np.random.default_rng(seed)
    rows = []
    for n in degrees:
        first_kind = C.chebinterpolate(ft, n)
        t2 = np.cos(np.pi * np.arange(n + 1) / n)  # second-kind points
        second_kind = np.linalg.solve(C.chebvander(t2, n), ft(t2))
        _, _, _, mse_ls = _errors(f, SlafPolynomial("chebyshev", tuple(first_kind), (lo, hi)), lo, hi)
        for basis in bases:
            variable = "raw" if basis == "power" else "mapped"
            noise = 0.2 / (n + 1) if basis == "power" else 1e-6
            for method, cheb in (("lstsq", first_kind), ("minimax", second_kind),
                                 ("gradient", first_kind + noise * rng.standard_normal(n + 1))):
                p = SlafPolynomial("chebyshev", tuple(cheb), (lo, hi)).convert(basis, variable)
                emax, rms, at, mse = _errors(f, p, lo, hi)
                minimax = method == "minimax"
                rows.append(dict(
                    target=name, basis=basis, variable=variable, degree=n, lo=lo, hi=hi, method=method,
                    coefficients=list(p.coef), max_error=emax, rms_error=rms,
                    levelled_error=0.97 * emax if minimax else math.nan,
                    iterations=500 if method == "gradient" else 3 if minimax else 1,
                    converged=not (minimax and n == 5), note="maxiter reached" if minimax and n == 5 else "",
                    seconds=1e-3 * n, condition_number=10.0 ** n if basis == "power" else 1.5 * n,
                    weight="uniform", params=dict(tg.params), max_error_at=at,
                    gap=(mse - mse_ls) / mse_ls if method == "gradient" else math.nan,
                    history=[1.0, 0.5] if method == "gradient" else []))
    return rows


@pytest.fixture(scope="module")
def rows():
    return make_rows("relu") + make_rows("abs")


def write_csv(rows, path):
    """As the sweep does: JSON for coefficients and params, no history column."""
    fields = [f for f in FIELDS if f != "history"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(r[k]) if k in ("coefficients", "params") else r[k] for k in fields})


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _links(readme: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)


# ---------------------------------------------------------------------------------------------- rows
def test_rows_have_the_fitrecord_fields(rows):
    assert all(list(r) == FIELDS for r in rows)


def test_normalise_row_from_csv_strings():
    raw = {"target": "relu", "basis": "power", "variable": "raw", "degree": "3", "lo": "-3.0", "hi": "3.0",
           "method": "minimax", "coefficients": "[0.5, 0.25, NaN]", "max_error": "0.1", "rms_error": "inf",
           "levelled_error": "", "iterations": "7", "converged": "False", "note": "", "seconds": "0.01",
           "condition_number": "nan", "weight": "uniform", "params": '{"slope": 0.01}', "max_error_at": "1.5",
           "gap": "nan"}
    r = report.normalise_row(raw)
    assert r["degree"] == 3 and isinstance(r["degree"], int) and r["iterations"] == 7
    assert r["lo"] == -3.0 and r["max_error"] == 0.1 and r["rms_error"] == math.inf
    assert math.isnan(r["levelled_error"]) and math.isnan(r["condition_number"])
    assert r["converged"] is False and report.normalise_row(raw | {"converged": "True"})["converged"] is True
    assert r["coefficients"][:2] == [0.5, 0.25] and math.isnan(r["coefficients"][2])
    assert r["params"] == {"slope": 0.01}
    assert "history" not in r
    assert raw["degree"] == "3"  # the input is not modified


def test_normalise_row_keeps_in_memory_rows(rows):
    r = report.normalise_row(rows[0])
    assert r.keys() == rows[0].keys()
    for k, v in rows[0].items():
        nan = isinstance(v, float) and math.isnan(v)
        assert math.isnan(r[k]) if nan else r[k] == v, k


def test_table_degrees():
    assert report.table_degrees(range(1, 7)) == [1, 2, 4, 6]
    assert report.table_degrees(range(1, 21)) == [1, 2, 4, 8, 12, 16, 20]
    assert report.table_degrees([3, 5]) == [5]
    assert report.table_degrees([]) == []


# ---------------------------------------------------------------------------------------------- tables
def parse_tables(md: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, body rows) of every Markdown table in `md`."""
    out, lines = [], md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: ") \
                and (i == 0 or not lines[i - 1].startswith("|")):
            cells = lambda s: [c.strip() for c in s.strip().strip("|").split(" | ")]  # noqa: E731
            body = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                body.append(cells(row))
            out.append((cells(line), body))
    return out


def test_summary_table_rows_and_values(rows):
    (header, body), = parse_tables(report.summary_table(rows, "relu"))
    assert [b[0] for b in body] == ["1", "2", "4", "6"]  # degrees 1, 2, 4 and the largest, 6
    # the theory bounds first (relu on a symmetric interval), then one column per series; lstsq and minimax
    # give the same numbers in both bases (the synthetic power rows are the chebyshev ones converted)
    assert header == ["n", "Jackson", "Bernstein β·a/(2n)", "lstsq/chebyshev = power(raw)",
                      "minimax/chebyshev = power(raw)", "gradient/chebyshev", "gradient/power(raw)"]
    by = {(r["method"], r["basis"], r["degree"]): r for r in rows if r["target"] == "relu"}
    for line in body:
        n = int(line[0])
        assert line[1] == f"{theory.jackson_bound(1.0, -1.0, 1.0, n):.3g}"
        assert line[2] == f"{theory.bernstein_relu(1.0, n):.3g}"
        assert line[3] == f"{by[('lstsq', 'chebyshev', n)]['max_error']:.3g}"
        assert line[6] == f"{by[('gradient', 'power', n)]['max_error']:.3g}"


def test_wide_tables_are_split_repeating_the_leading_columns():
    rows = []  # 4 bases x (lstsq, gradient), every series with numbers of its own
    for i, b in enumerate(("chebyshev", "power", "legendre", "hermite")):
        for r in make_rows("relu", bases=(b,), seed=i):
            if r["method"] != "minimax":
                r["max_error"] *= 1 + 0.01 * i
                rows.append(r)
    tables = parse_tables(report.summary_table(rows, "relu"))
    assert len(tables) == 2 and all(len(h) <= report.MAX_COLUMNS for h, _ in tables)
    series = [c for h, _ in tables for c in h[3:]]
    assert len(series) == len(set(series)) == 8  # every series once, none lost
    assert all(h[:3] == ["n", "Jackson", "Bernstein β·a/(2n)"] for h, _ in tables)
    assert all([b[0] for b in body] == ["1", "2", "4", "6"] for _, body in tables)


def test_summary_table_unknown_target(rows):
    with pytest.raises(ValueError, match="no rows for target 'gelu'"):
        report.summary_table(rows, "gelu")


def test_minimax_table_lists_table_degrees_and_failures(rows):
    table = report.minimax_table(rows, "relu")
    (h1, body), = parse_tables(table)
    assert len(h1) <= report.MAX_COLUMNS
    assert h1[:2] == ["target", "n"] and {line[0] for line in body} == {"relu on [-1, 1]"}
    assert [line[1] for line in body] == ["1", "2", "4", "5", "6"]  # 5 did not converge
    assert body[3][5] == "**no** (3)" and "maxiter reached" in body[3][-1]
    r = next(r for r in rows if (r["target"], r["method"], r["basis"], r["degree"]) == ("relu", "minimax",
                                                                                         "chebyshev", 4))
    assert body[2][2:5] == [f"{r['levelled_error']:.3g}", f"{r['max_error']:.3g}", "0.03"]  # (E - h)/E
    assert report.minimax_table([r for r in rows if r["method"] != "minimax"]) == ""


def test_csv_rows_give_the_same_tables_and_report(rows, tmp_path):
    write_csv(rows, tmp_path / "results.csv")
    back = read_csv(tmp_path / "results.csv")
    assert isinstance(back[0]["degree"], str)  # really strings
    for target in ("relu", "abs"):
        assert report.summary_table(back, target) == report.summary_table(rows, target)
        assert report.gradient_table(back, target) == report.gradient_table(rows, target)
    assert report.minimax_table(back) == report.minimax_table(rows)
    a = report.write_report(rows, tmp_path / "mem", meta=META)
    b = report.write_report(back, tmp_path / "csv", meta=META)
    assert a.read_text() == b.read_text()


# ---------------------------------------------------------------------------------------------- README
def test_write_report_files(rows, tmp_path):
    out = tmp_path / "new" / "report"
    path = report.write_report(rows, out, meta=META, title="test report")
    assert path == out / "README.md" and path.is_file()
    text = path.read_text()
    assert text.startswith("# test report\n")
    assert "**Machine and date:** machine test-box (x86_64), 2 cores; python 3.11.9" in text
    assert "2026-01-01 00:00 UTC" in text and "`pytest`" in text
    for target in ("relu", "abs"):
        assert f"## {target} on [-1, 1]" in text
    links = _links(text)
    assert set(links) == {"error_relu.png", "overlay_relu.png", "error_abs.png", "overlay_abs.png"}
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(links)  # every linked PNG exists, every PNG is linked
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in out.iterdir()) == sorted([*pngs, "README.md"])  # no temporary files left
    assert "## Minimax certificates" in text and "## Gradient fits" in text


def test_readme_states_what_the_data_shows(rows, tmp_path):
    text = report.write_report(rows, tmp_path).read_text()
    relu = [r for r in rows if r["target"] == "relu"]
    by = {(r["method"], r["basis"], r["degree"]): r for r in relu}
    good = sum(by[("minimax", "chebyshev", n)]["max_error"] <= by[("lstsq", "chebyshev", n)]["max_error"]
               for n in range(1, 7))
    assert f"Minimax max error ≤ lstsq max error at: chebyshev {good}/6" in text
    # the power basis' gradient rows were perturbed by 0.2/(n+1): their gap exceeds STALL_GAP
    stalled = [n for n in range(1, 7) if by[("gradient", "power", n)]["gap"] > report.STALL_GAP]
    assert stalled, "the synthetic data should show a stall"
    assert ("power(raw): gradient descent stalls after 500 steps (loss more than 1.1× the lstsq optimum) "
            f"at {len(stalled)} of 6 degrees") in text
    assert "chebyshev: within 0.1 of the lstsq optimum at every degree" in text
    assert "Machine and date:** not recorded" in text
    assert "1 of 24 minimax fits did not converge" not in text  # two targets x two bases fail at n = 5
    assert "4 of 24 minimax fits did not converge" in text


def test_several_intervals_get_their_own_files(tmp_path):
    rows = make_rows("relu", -1.0, 1.0, range(1, 4)) + make_rows("relu", -2.0, 2.0, range(1, 4)) \
        + make_rows("abs", -1.0, 1.0, range(1, 4))
    text = report.write_report(rows, tmp_path).read_text()
    assert set(_links(text)) == {"error_relu_-1_1.png", "overlay_relu_-1_1.png", "error_relu_-2_2.png",
                                 "overlay_relu_-2_2.png", "error_abs.png", "overlay_abs.png"}
    assert "## relu on [-1, 1]" in text and "## relu on [-2, 2]" in text
    assert report.summary_table(rows, "relu", (-2, 2)) != report.summary_table(rows, "relu", (-1, 1))
    assert report.summary_table(rows, "relu") == report.summary_table(rows, "relu", (-1, 1))  # first found


def test_target_outside_the_catalogue(rows, tmp_path):
    other = [dict(r, target="not_in_catalogue") for r in rows if r["target"] == "abs"]
    text = report.write_report(other, tmp_path).read_text()
    assert "Not in the target catalogue" in text
    assert _links(text) == ["error_not_in_catalogue.png"]
    header = report.summary_table(other, "not_in_catalogue").splitlines()[0]
    assert "Jackson" not in header


# ---------------------------------------------------------------------------------------------- figures
def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _column_legend(fig, col: int) -> list[str]:
    """The legend of an error figure's column (under its bottom panel; it names the top panel's lines)."""
    top, bottom = _columns(fig)[col]
    assert top.get_legend() is None
    return _legend(bottom)


def _columns(fig):
    """(max-error axes, rms-error axes) per column of an error figure."""
    n = len(fig.axes) // 2
    return list(zip(fig.axes[:n], fig.axes[n:], strict=True))


def test_error_figure(rows):
    fig = report.error_figure(rows, "relu")
    (ls_max, ls_rms), (gr_max, gr_rms) = _columns(fig)
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    # lstsq and minimax give the same numbers in both bases: drawn once each, the note says so
    assert _column_legend(fig, 0) == ["lstsq/chebyshev = power(raw)", "minimax/chebyshev = power(raw)",
                                      "theory: Jackson", "theory: Bernstein β·a/(2n)"]
    assert _column_legend(fig, 1)[:2] == ["gradient/chebyshev", "gradient/power(raw)"]
    assert "drawn once" in fig.get_supxlabel()
    assert len(ls_max.get_lines()) == 2 + 2 and len(ls_rms.get_lines()) == 2
    # theory lines lie above every data line, and the legend shows each line with its own style
    for ax, under in ((ls_max, ls_rms), (gr_max, gr_rms)):
        data, theory_lines = ax.get_lines()[:-2], ax.get_lines()[-2:]
        assert min(t.get_zorder() for t in theory_lines) > max(d.get_zorder() for d in data)
        for handle, line in zip(under.get_legend().legend_handles, ax.get_lines(), strict=True):
            assert (handle.get_linestyle(), handle.get_color()) == (line.get_linestyle(), line.get_color())
    # a legend sample shows two periods of every dash pattern (a too-short sample of a dash-dot looks solid)
    from slaf_approx.report import figures

    patterns = [(ls, figures.THEORY_WIDTH) for _, ls in figures.THEORY_STYLES]
    patterns += [(ls, 1.3) for _, ls, _ in figures.BASIS_STYLES.values() if isinstance(ls, tuple)]
    sample = figures.LEGEND_HANDLE * figures.LEGEND_FONT  # points
    assert all(sample >= 2 * sum(ls[1]) * width for ls, width in patterns), (sample, patterns)


def test_error_figure_rate_line_for_analytic_target():
    fig = report.error_figure(make_rows("tanh", -3.0, 3.0, range(1, 9), bases=("chebyshev",)), "tanh")
    rho = theory.analytic_rate(get_target("tanh"), -3.0, 3.0)
    assert f"theory: ρ^-n (ρ={rho:.3g})" in _column_legend(fig, 0)


def diverging_rows():
    """tanh rows whose gradient/power(raw) errors fall to n = 4 and then grow to 1.9e4 (as measured on the
    default suite, reports/results.csv of 2026-11-30), beside well-behaved lstsq rows."""
    rows = make_rows("tanh", -3.0, 3.0, range(1, 11), bases=("chebyshev", "power"))
    grow = {5: 0.16, 6: 0.32, 7: 0.64, 8: 0.9, 9: 7.4e3, 10: 1.93e4}
    for r in rows:
        if (r["method"], r["basis"]) == ("gradient", "power") and r["degree"] in grow:
            r["max_error"] = r["rms_error"] = grow[r["degree"]]
            r["gap"] = 1e6
    return rows


def test_a_diverging_series_is_clipped_marked_and_called_diverging(tmp_path):
    rows = diverging_rows()
    g = report.groups(rows)[0]
    div = report.diverges(report.series(g)[("gradient", "power", "raw", "uniform")])
    assert div is not None and div[2:] == (10, 1.93e4)
    others = [s for k, s in report.series(g).items() if k[:2] != ("gradient", "power")]
    assert others and all(report.diverges(s) is None for s in others)
    fig = report.error_figure(rows, "tanh")
    ax = _columns(fig)[1][0]  # gradient descent, max error
    top = ax.get_ylim()[1]
    assert top < 100  # the diverging curve does not set the axis
    label = next(s for s in _column_legend(fig, 1) if s.startswith("gradient/power(raw)"))
    assert "diverges" in label and "1.93e+04" in label
    assert "clipped" in fig.get_supxlabel()
    text = report.write_report(rows, tmp_path).read_text()
    assert "power(raw): gradient descent diverges" in text
    assert "power(raw): gradient descent stalls" not in text
    assert "tanh: gradient/power(raw) diverges (max error" in text


def test_legends_hold_at_most_seven_entries():
    rows = []  # 4 bases x 2 methods of different numbers (lstsq perturbed per basis) + 2 theory lines
    for i, b in enumerate(("chebyshev", "legendre", "power", "hermite")):
        for r in make_rows("relu", bases=(b,)):
            if r["method"] in ("lstsq", "minimax"):
                r["max_error"] *= 1 + 0.01 * i
            rows.append(r)
    fig = report.error_figure(rows, "relu")
    entries = [len(_legend(ax)) for ax in fig.axes if ax.get_legend() is not None]
    assert max(entries) <= 7 and sum(entries) >= 12 + 2  # every series shown somewhere


def test_overlay_figure_uses_the_closest_degree(rows):
    fig = report.overlay_figure(rows, "relu", degree=8)
    top, bottom = fig.axes
    assert "degree-6" in top.get_title()
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert labels[0] == get_target("relu").title
    methods = [s.split(":")[0] for s in labels[1:]]
    assert methods == ["lstsq/chebyshev", "minimax/chebyshev", "gradient/chebyshev"]
    lo, hi = top.get_xlim()
    assert lo == pytest.approx(-1.2) and hi == pytest.approx(1.2)
    # the bottom panel's curves are the signed errors on [lo, hi]: their extreme is the row's max error
    r = next(r for r in rows if (r["target"], r["method"], r["basis"], r["degree"]) == ("relu", "lstsq",
                                                                                       "chebyshev", 6))
    err = bottom.get_lines()[0].get_ydata()
    assert np.abs(err).max() == pytest.approx(r["max_error"], rel=1e-3)
    assert bottom.get_lines()[0].get_xdata().min() == -1.0


# ---------------------------------------------------------------------------------------------- size
def test_default_sized_report(tmp_path):
    # 4 targets x 20 degrees x 3 methods x 3 bases = 720 rows, as the default suite
    rows = []
    for name in ("relu", "gelu", "swish", "tanh"):
        rows += make_rows(name, -3.0, 3.0, range(1, 21), bases=("power", "chebyshev", "legendre"))
    assert len(rows) == 720
    report.write_report(rows, tmp_path, meta=META)
    assert len(list(tmp_path.glob("*.png"))) == 8


def test_cost_table_and_benchmark_section(rows, tmp_path):
    table = report.cost_table(rows)
    body = [line for line in table.splitlines()[2:] if line]
    series = {(r["method"], report.basis_label(r["basis"], r["variable"])) for r in rows}
    assert len(body) == len(series)
    lstsq_cheb = [r["seconds"] for r in rows if (r["method"], r["basis"]) == ("lstsq", "chebyshev")]
    line = next(s for s in body if s.startswith("| lstsq | chebyshev |"))
    assert f"| {len(lstsq_cheb)} | {report.fmt(float(np.median(lstsq_cheb)))} |" in line
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "fit.md").write_text("| budget | measured |\n|---|---|\n| x | 1 |\n")
    text = report.write_report(rows, tmp_path, meta=META).read_text()
    assert "## Cost of the fits" in text and "## Benchmarks" in text and "| x | 1 |" in text


# ---------------------------------------------------------------------------------------------- summary
def test_readme_opens_with_a_summary_of_degrees_per_tolerance(rows, tmp_path):
    text = report.write_report(rows, tmp_path, meta=META).read_text()
    assert text.index("## Summary") < text.index("## relu on")
    summary = text[text.index("## Summary"):text.index("## relu on")]
    assert "not measured" in summary  # no benchmark run given
    (header, body), = parse_tables(summary[summary.index("**relu on [-1, 1]**"):summary.index("**abs on")])
    assert header[:4] == ["max error ≤", "lstsq", "minimax", "gradient"]
    relu = [r for r in rows if r["target"] == "relu"]
    for line, tol in zip(body, report.TOLERANCES, strict=True):
        assert line[0] == f"{tol:g}"
        for col, method in ((1, "lstsq"), (2, "minimax"), (3, "gradient")):
            reached = [r["degree"] for r in relu if r["method"] == method and r["max_error"] <= tol]
            assert line[col] == (str(min(reached)) if reached else "> 6"), (tol, method, line)


def test_summary_kernel_cost_comes_from_the_benchmark_records(rows):
    g = report.groups(rows)[0]
    tol = 0.1  # relu on [-1, 1] reaches it at a low degree
    d = min(r["degree"] for r in g.rows if r["method"] != "gradient" and r["max_error"] <= tol)
    bench = [  # two sizes and backends at a measured degree above d; the cheaper per element wins
        {"op": "slaf", "mode": "forward", "backend": "fused", "degree": d + 1, "size": 2**20, "median": 2e-3,
         "dtype": "float32", "device": "cpu"},
        {"op": "slaf", "mode": "forward", "backend": "reference", "degree": d + 1, "size": 2**20,
         "median": 8e-3, "dtype": "float32", "device": "cpu"},
        {"op": "slaf", "mode": "forward", "backend": "fused", "degree": d + 1, "size": 2**16, "median": 1e-6,
         "dtype": "float32", "device": "cpu"},  # a smaller size is not the one reported
        {"op": "copy", "mode": "forward", "backend": "torch", "size": 2**20, "median": 1e-4}]
    (_, body), = parse_tables(report.glance_table(g, bench, tolerances=(tol,)))
    expect = f"{2e-3 / 2**20 * 1e9:.3g} ns/element, fused forward, float32 cpu (measured at n = {d + 1})"
    assert body[0][-1] == f"n = {d}: {expect}"
    (_, body), = parse_tables(report.glance_table(g, None, tolerances=(tol,)))
    assert body[0][-1] == f"n = {d}: not measured"


def test_every_table_of_a_default_sized_report_is_at_most_eight_columns(tmp_path):
    rows = []
    for name in ("relu", "tanh"):
        rows += make_rows(name, -3.0, 3.0, range(1, 21), bases=("power", "chebyshev", "legendre"))
    for r in [r for r in rows if (r["method"], r["basis"]) == ("lstsq", "power")]:  # rational stand-ins:
        n = r["degree"] // 2  # type (m, n) = (⌈d/2⌉, ⌊d/2⌋) with Q = 1, P the lstsq fit cut to degree m
        rows.append(dict(r, method="rational", form="pau", denominator=[0.0] * n,
                         coefficients=r["coefficients"][:r["degree"] - n + 1]))
    text = report.write_report(rows, tmp_path, meta=META).read_text()
    assert "## Rational approximants" in text
    widths = [len(h) for h, _ in parse_tables(text)]
    assert len(widths) > 8 and max(widths) <= report.MAX_COLUMNS, widths


class _Estimated:
    """A catalogue target whose Lipschitz constant and singularities were estimated, not declared."""

    def __init__(self, tg):
        self._tg = tg
        self.estimated = {"lipschitz", "singularities"}

    def __getattr__(self, name):
        return getattr(self._tg, name)

    def __call__(self, x):
        return self._tg(x)


def test_estimated_target_fields_are_said_to_be_estimated(monkeypatch, tmp_path):
    rows = make_rows("tanh", -3.0, 3.0, range(1, 7), bases=("chebyshev",))
    plain = report.write_report(rows, tmp_path / "plain").read_text()
    assert "estimated" not in plain
    real = report.data.target_of
    for module in (report.data, report.prose, report.writer, report.figures):
        monkeypatch.setattr(module, "target_of", lambda g: _Estimated(real(g)), raising=False)
    text = report.write_report(rows, tmp_path / "est").read_text()
    assert "- Lipschitz constant: 1 (estimated)" in text
    assert "The theory rows and curves are estimated" in text
    assert "Jackson's bound (π/2)·L·((hi−lo)/2)/(n+1) (from an estimated Lipschitz constant)" in text


def test_overlay_names_a_rational_pole_outside_the_interval():
    from slaf_approx.rational import RationalFunction

    rows = make_rows("relu", bases=("chebyshev",))
    r = next(r for r in rows if (r["method"], r["degree"]) == ("lstsq", 2))
    # P/(1 + q1 x) with q1 = -1/1.1: a pole at x = 1.1, inside the plotted range [-1.2, 1.2], outside [-1, 1]
    rat = dict(r, method="rational-minimax", form="standard", basis="power", variable="raw",
               coefficients=[0.0, 0.5], denominator=[-1 / 1.1], max_error=math.inf, rms_error=math.inf)
    assert RationalFunction((0.0, 0.5), (-1 / 1.1,), (-1.0, 1.0), "raw", "standard", "power").poles() \
        == pytest.approx([1.1])
    fig = report.overlay_figure([*rows, rat], "relu", degree=2)
    label = next(s for s in _legend(fig.axes[0]) if s.startswith("rational-minimax"))
    assert label.endswith("pole at x = 1.1")


def test_overlay_says_which_error_curves_are_flat_at_its_scale():
    # tanh on [-1, 1] at degree 8: lstsq and minimax errors ~1e-6; the perturbed gradient fit's ~1e-2
    rows = make_rows("tanh", -1.0, 1.0, [8], bases=("power",))
    fig = report.overlay_figure(rows, "tanh", degree=8)
    note = fig.axes[1].get_title()
    assert note.startswith("flat at this scale") and note.endswith(": lstsq, minimax"), note
    assert report.overlay_figure(make_rows("relu", bases=("chebyshev",)), "relu").axes[1].get_title() == ""
