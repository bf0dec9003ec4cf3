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
def test_summary_table_rows_and_values(rows):
    table = report.summary_table(rows, "relu")
    lines = table.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(body) == 4  # degrees 1, 2, 4 and the largest, 6
    assert [b[0] for b in body] == ["1", "2", "4", "6"]
    # 3 methods x 2 bases, then Jackson's bound and Bernstein's asymptote (relu on a symmetric interval)
    assert header == ["n", "lstsq/chebyshev", "lstsq/power(raw)", "minimax/chebyshev", "minimax/power(raw)",
                      "gradient/chebyshev", "gradient/power(raw)", "Jackson", "Bernstein β·a/(2n)"]
    by = {(r["method"], r["basis"], r["degree"]): r for r in rows if r["target"] == "relu"}
    for line in body:
        n = int(line[0])
        assert line[1] == f"{by[('lstsq', 'chebyshev', n)]['max_error']:.3g}"
        assert line[6] == f"{by[('gradient', 'power', n)]['max_error']:.3g}"
        assert line[7] == f"{theory.jackson_bound(1.0, -1.0, 1.0, n):.3g}"
        assert line[8] == f"{theory.bernstein_relu(1.0, n):.3g}"


def test_summary_table_unknown_target(rows):
    with pytest.raises(ValueError, match="no rows for target 'gelu'"):
        report.summary_table(rows, "gelu")


def test_minimax_table_lists_table_degrees_and_failures(rows):
    table = report.minimax_table(rows, "relu")
    body = table.strip().splitlines()[2:]
    assert [line.split("|")[3].strip() for line in body] == ["1", "2", "4", "5", "6"]  # 5 did not converge
    line5 = body[3]
    assert "**no**" in line5 and "maxiter reached" in line5
    r = next(r for r in rows if (r["target"], r["method"], r["basis"], r["degree"]) == ("relu", "minimax",
                                                                                         "chebyshev", 4))
    assert f"| {r['levelled_error']:.3g} | {r['max_error']:.3g} | 0.03 |" in body[2]  # (E - h)/E = 0.03
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
def test_error_figure(rows):
    fig = report.error_figure(rows, "relu")
    ax_max, ax_rms = fig.axes
    assert ax_max.get_yscale() == "log" and ax_rms.get_yscale() == "log"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["lstsq/chebyshev", "lstsq/power(raw)"]
    assert "Jackson" in labels and "Bernstein β·a/(2n)" in labels
    assert len(ax_max.get_lines()) == 6 + 2 and len(ax_rms.get_lines()) == 6


def test_error_figure_rate_line_for_analytic_target():
    fig = report.error_figure(make_rows("tanh", -3.0, 3.0, range(1, 9), bases=("chebyshev",)), "tanh")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    rho = theory.analytic_rate(get_target("tanh"), -3.0, 3.0)
    assert f"ρ^-n (ρ={rho:.3g})" in labels


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
