"""Accuracy against cost: the Pareto front and the cheapest point per tolerance (pure functions, checked
against their definitions on random points), the choice of points from a results table, the section and its
figure from given timings and errors, and the timing helpers' bookkeeping (no timed assertions)."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slaf_approx.benchmarks import accuracy, workloads
from slaf_approx.benchmarks.accuracy import CostTimings
from slaf_approx.report import cost
from slaf_approx.report.data import Group

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _dominated(points, i) -> bool:
    """The definition: some point has no higher cost and no higher error, and one of them lower."""
    ci, ei = points[i]
    return any(c <= ci and e <= ei and (c < ci or e < ei) for c, e in points)


@pytest.mark.parametrize("seed", range(20))
def test_the_front_is_exactly_the_set_of_undominated_points_in_cost_order(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    # coarse grids make ties in cost, in error and whole duplicates likely
    pts = [(float(c), float(e)) for c, e in zip(rng.integers(1, 8, n) / 2, 10.0 ** -rng.integers(1, 6, n),
                                                strict=True)]
    front = cost.pareto_front(pts)
    want = {i for i in range(n) if not _dominated(pts, i)}
    assert set(front) == want, (pts, front, sorted(want))
    costs = [pts[i][0] for i in front]
    errs = [pts[i][1] for i in front]
    assert costs == sorted(costs) and errs == sorted(errs, reverse=True), [pts[i] for i in front]


def test_the_front_by_hand_keeps_equal_points_and_drops_nonfinite_ones():
    pts = [(1.0, 1e-2), (2.0, 1e-3), (2.0, 1e-2), (3.0, 1e-3), (0.5, math.nan), (4.0, 1e-5), (4.0, 1e-5),
           (math.inf, 1e-9), (5.0, math.inf)]
    # (2, 1e-2) is beaten by (1, 1e-2) and (3, 1e-3) by (2, 1e-3); the two (4, 1e-5) tie
    assert cost.pareto_front(pts) == [0, 1, 5, 6]
    assert cost.pareto_front([]) == []


@pytest.mark.parametrize("seed", range(10))
def test_the_cheapest_point_reaching_a_tolerance_is_on_the_front_and_nothing_cheaper_reaches_it(seed):
    rng = np.random.default_rng(100 + seed)
    pts = [(float(c), float(e)) for c, e in zip(rng.uniform(0.5, 30, 25), 10.0 ** rng.uniform(-7, 0, 25),
                                                strict=True)]
    front = cost.pareto_front(pts)
    for tol in (1e-2, 1e-3, 1e-4, 1e-9):
        i = cost.cheapest(pts, tol)
        ok = [j for j, (_, e) in enumerate(pts) if e <= tol]
        if not ok:
            assert i is None
            continue
        assert i in front and pts[i][1] <= tol
        assert pts[i][0] == min(pts[j][0] for j in ok), (tol, pts[i], [pts[j] for j in ok])


def test_cheapest_breaks_a_cost_tie_by_the_error():
    assert cost.cheapest([(2.0, 1e-3), (1.0, 5e-3), (1.0, 2e-3)], 1e-2) == 2
    assert cost.cheapest([(2.0, 1e-3)], 1e-4) is None


# ------------------------------------------------------------------------------------------------
# Points of a group
# ------------------------------------------------------------------------------------------------
def _row(method, basis, degree, err, form="", denominator=()):
    return {"target": "gelu", "lo": -3.0, "hi": 3.0, "params": {}, "method": method, "basis": basis,
            "variable": "raw" if basis == "power" else "mapped", "degree": degree, "max_error": err,
            "form": form, "denominator": list(denominator),
            "coefficients": [0.5 ** k for k in range(degree + 1)],
            "rms_error": err / 3, "levelled_error": math.nan, "iterations": 1, "converged": True, "note": "",
            "seconds": 0.01, "condition_number": 1.0, "weight": "uniform", "max_error_at": 0.0,
            "gap": math.nan, "history": []}


def _group():
    rows = []
    for d in (2, 4, 8):
        rows += [_row("lstsq", "chebyshev", d, 2.0 ** -d), _row("minimax", "chebyshev", d, 4.0 ** -d),
                 _row("minimax", "power", d, 1e-12),  # not the SLAF basis: never a point
                 _row("rational", "power", d, 3.0 ** -d, "pau", [0.1] * (d // 2)),
                 _row("rational-minimax", "power", d, 1e-12, "standard", [0.1] * (d // 2))]
    rows.append(_row("rational", "power", 1, 0.3, "pau", ()))  # no denominator: a polynomial, not a PAU
    return Group("gelu", -3.0, 3.0, {}, rows)


def _timings(**extra):
    s = {("native", "gelu"): 2e-4, **{("slaf", d): 1e-4 * (1 + d / 8) for d in (2, 4, 8)},
         **{("pau", d): 1e-3 * d for d in (2, 4, 8)}, **extra}
    return CostTimings(s, 2**16, "float32", "cpu", 7, 2, "fused", "2.x", {"gelu": "F.gelu"}, 3)


def test_candidates_take_the_lowest_error_chebyshev_fit_and_the_pau_fits_with_a_denominator():
    slaf, pau = cost.candidates(_group())
    assert {d: (r["method"], r["basis"]) for d, r in slaf.items()} == {d: ("minimax", "chebyshev")
                                                                        for d in (2, 4, 8)}
    assert {d: (r["method"], r["form"]) for d, r in pau.items()} == {d: ("rational", "pau")
                                                                      for d in (2, 4, 8)}
    assert cost.timed_degrees([_group()]) == ([2, 4, 8], [2, 4, 8])


def test_group_points_are_cost_ratios_to_the_native_with_the_given_errors():
    g, t = _group(), _timings()
    pts = cost.group_points(g, t, "float32", error=lambda r, dt: 2 * r["max_error"],
                            native=lambda g, dt: 1e-7)
    by = {p.label: p for p in pts}
    assert by["F.gelu"].cost == 1.0 and by["F.gelu"].error == 1e-7
    assert by["SLAF n = 8"].cost == pytest.approx(2e-4 / 2e-4, rel=1e-15)
    assert by["SLAF n = 8"].error == 2 * 4.0 ** -8  # the minimax row, below lstsq's 2^-8
    assert by["PAU (4, 4)"].cost == pytest.approx(8e-3 / 2e-4, rel=1e-15) and by["PAU (1, 1)"].degree == 2
    assert len(pts) == 7  # native, three SLAF degrees, three PAU types


def test_no_native_timing_or_error_gives_no_points():
    g = _group()
    t = _timings()
    no_native = dataclasses.replace(t, seconds={k: v for k, v in t.seconds.items() if k[0] != "native"})
    assert cost.group_points(g, no_native, "float32", error=lambda r, dt: 1.0, native=lambda g, dt: 1.0) == []
    assert cost.group_points(g, t, "float32", error=lambda r, dt: 1.0, native=lambda g, dt: None) == []


def test_the_reach_table_names_the_cheapest_approximant_and_none_and_never_the_native():
    pts = {"float32": [cost.CostPoint("native", "F.gelu", None, 1.0, 1e-7),
                       cost.CostPoint("slaf", "SLAF n = 6", 6, 1.4, 5e-3),
                       cost.CostPoint("slaf", "SLAF n = 10", 10, 1.6, 4e-4),
                       cost.CostPoint("pau", "PAU (3, 3)", 6, 9.0, 2e-3)],
           "bfloat16": [cost.CostPoint("native", "F.gelu", None, 1.0, 4e-3),
                        cost.CostPoint("slaf", "SLAF n = 6", 6, 1.4, 8e-3)]}
    lines = cost.reach_table(pts).splitlines()
    assert lines[2].split("|")[2:4] == [" SLAF n = 6: 1.40× F.gelu's time, error 0.005 ",
                                        " SLAF n = 6: 1.40× F.gelu's time, error 0.008 "], lines
    assert "SLAF n = 10: 1.60×" in lines[3] and lines[3].rstrip(" |").endswith("none"), lines
    assert lines[4].count("none") == 2, lines
    assert "F.gelu: error 1e-07" in lines[5] and "F.gelu: error 0.004" in lines[5], lines


def test_the_section_and_its_figure_from_given_timings_and_errors(tmp_path):
    from slaf_approx._io import save_figure

    g = _group()
    md, figs = cost.section([g], _timings(), {g.key: "gelu"}, error=lambda r, dt: r["max_error"],
                            native=lambda g, dt: 0.0 if dt == "float32" else 4e-3)
    text = "\n".join(md)
    assert md[0] == "## Accuracy against cost"
    assert "CPU timings (this machine)" in text and "GPU: not measured" in text and "2^16 float32" in text
    assert "minimum over 7 interleaved rounds of 3 calls each, 2 torch threads" in text
    assert "backend auto (fused)" in text
    assert "![achieved error against forward+backward cost for gelu](accuracy_gelu.png)" in text
    # float32: the native's error 0 at cost 1 dominates SLAF n = 8 (also cost 1) and every PAU
    assert ("Pareto front in float32, cheapest first: SLAF n = 2 (0.62×, 0.0625); SLAF n = 4 (0.75×, "
            "0.00391); F.gelu (1.00×, 0).") in text
    assert list(figs) == ["accuracy_gelu.png"]
    fig = figs["accuracy_gelu.png"]
    axes = fig.axes
    assert [a.get_xscale() for a in axes] == ["log"] * 2 and [a.get_yscale() for a in axes] == ["log"] * 2
    assert [a.get_title() for a in axes] == [f"achieved max error in {dt}" for dt in ("float32", "bfloat16")]
    assert "CPU timings (this machine)" in fig._suptitle.get_text()
    path = save_figure(fig, tmp_path / "accuracy_gelu.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_a_target_without_a_native_op_is_said_so_and_gets_no_figure():
    g = _group()
    md, figs = cost.section([g], _timings(), {g.key: "gelu"}, error=lambda r, dt: 1.0,
                            native=lambda g, dt: None)
    assert figs == {} and any("No native activation timed for gelu" in s for s in md)


# ------------------------------------------------------------------------------------------------
# Timing helpers (what they return, never how fast)
# ------------------------------------------------------------------------------------------------
def test_interleaved_minima_calls_each_callable_once_per_round_after_a_warm_up():
    calls = {"a": 0, "b": 0}

    def make(k):
        def f():
            calls[k] += 1
        return f

    best, rounds = accuracy.interleaved_minima({k: make(k) for k in calls}, min_rounds=3, max_rounds=4,
                                               budget_s=0.0, repeat=2)
    assert rounds == 3 and calls == {"a": 7, "b": 7}  # one warm-up call + two per round
    assert set(best) == {"a", "b"} and all(0 < v < math.inf for v in best.values()), best
    with pytest.raises(ValueError, match="min_rounds <= max_rounds"):
        accuracy.interleaved_minima({}, min_rounds=5, max_rounds=2)
    with pytest.raises(ValueError, match="repeat >= 1"):
        accuracy.interleaved_minima({}, repeat=0)


def _dsilu(x):
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


@pytest.mark.parametrize(("f", "df"), [(torch.tanh, lambda x: 1 - torch.tanh(x) ** 2), (F.silu, _dsilu)])
def test_native_fn_runs_forward_and_backward_with_the_given_grad(f, df):
    x, gy = workloads.make_input(1000, "float64", "cpu")
    assert torch.equal(workloads.native_fn(f, "forward", x, gy)(), f(x))
    (gx,) = workloads.native_fn(f, "forward+backward", x, gy)()
    err = (gx - df(x) * gy).abs()
    assert err.max() <= 16 * torch.finfo(torch.float64).eps * (gy.abs().max() + 1), float(x[err.argmax()])
    with pytest.raises(ValueError, match="unknown mode"):
        workloads.native_fn(f, "backward", x, gy)


def test_costtimings_ratio_is_none_without_either_time():
    t = _timings()
    assert t.ratio(("slaf", 8), "gelu") == pytest.approx(1.0, rel=1e-15)
    assert t.ratio(("slaf", 3), "gelu") is None and t.ratio(("slaf", 8), "tanh") is None


def test_write_report_adds_the_section_and_one_png_per_target_only_with_timings(tmp_path, monkeypatch):
    from slaf_approx.report import write_report

    g = _group()
    monkeypatch.setattr(cost, "achieved_max", lambda r, dt: float(r["max_error"]))
    monkeypatch.setattr(cost, "native_max", lambda g, dt: 1e-7 if dt == "float32" else 4e-3)
    readme = write_report(g.rows, tmp_path / "with", cost=_timings()).read_text()
    assert "## Accuracy against cost" in readme and "(accuracy_gelu.png)" in readme
    assert (tmp_path / "with" / "accuracy_gelu.png").read_bytes()[:8] == PNG_MAGIC
    readme = write_report(g.rows, tmp_path / "without").read_text()
    assert "Accuracy against cost" not in readme and not list((tmp_path / "without").glob("accuracy_*"))


def test_measure_costs_times_every_asked_workload_with_the_native_ops_of_precision():
    from slaf_approx.precision import native_op

    threads_before = torch.get_num_threads()
    t = accuracy.measure_costs(["gelu", "swish", "abs"], [2, 8], [2, 5], size=2**10, min_rounds=1,
                               max_rounds=1, budget_s=0.0, repeat=2)
    assert set(t.seconds) == {("slaf", 2), ("slaf", 8), ("pau", 2), ("pau", 5), ("native", "gelu"),
                              ("native", "swish"), ("native", "abs")}
    assert all(0 < v < math.inf for v in t.seconds.values()), t.seconds
    assert t.natives == {"gelu": "F.gelu", "swish": "F.silu", "abs": "torch.abs"}
    assert (t.size, t.dtype, t.device, t.rounds, t.repeat, t.threads) == (2**10, "float32", "cpu", 1, 2, 1)
    assert torch.get_num_threads() == threads_before  # restored
    assert t.backend in ("fused", "reference")
    assert native_op("swish")[0] == "F.silu" and native_op(cost_target("swish", beta=2.0)) is None
    with pytest.raises(ValueError, match="degree >= 2"):
        accuracy.measure_costs(["gelu"], [2], [1], size=2**10, min_rounds=1, max_rounds=1)


def cost_target(name, **params):
    from slaf_approx.targets import get_target

    return get_target(name, **params)


def test_without_a_minimax_series_the_slaf_points_are_the_lowest_error_chebyshev_fits():
    g = _group()
    g = Group(g.target, g.lo, g.hi, g.params, [r for r in g.rows if r["method"] != "minimax"])
    slaf, _ = cost.candidates(g)
    assert {d: (r["method"], r["basis"]) for d, r in slaf.items()} == {d: ("lstsq", "chebyshev")
                                                                        for d in (2, 4, 8)}


def test_errors_the_floor_measured_are_reused_and_the_others_computed():
    from slaf_approx.report.data import Floor

    g = _group()
    slaf, pau = cost.candidates(g)
    fl = Floor("float32", {2: 0.5, 8: 0.25}, 1e-6, {2: slaf[2]["max_error"], 8: 123.0})  # 8: another row
    asked = []

    def compute(r, dt):
        asked.append((r["method"], r["degree"], dt))
        return 7.0

    err, nat = cost.reuse_floors([fl], compute, lambda g, dt: 3.0)
    assert err(slaf[2], "float32") == 0.5 and asked == []
    assert [err(slaf[8], "float32"), err(slaf[2], "bfloat16"), err(pau[2], "float32")] == [7.0] * 3
    assert asked == [("minimax", 8, "float32"), ("minimax", 2, "bfloat16"), ("rational", 2, "float32")]
    assert nat(g, "float32") == 1e-6 and nat(g, "bfloat16") == 3.0
