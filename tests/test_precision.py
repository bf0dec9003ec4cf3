"""Achieved error in a dtype (slaf_approx.precision): inputs, the kernels' arithmetic bit for bit, the golden
bounds of issue 13 (7a, 7b), native activations, bad input."""

import math

import numpy as np
import pytest
import torch

from slaf_approx import precision as P
from slaf_approx.bases import kernel_mapping
from slaf_approx.fit import fit
from slaf_approx.kernels import available_backends
from slaf_approx.nn import SLAF
from slaf_approx.targets import get_target

EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def gelu8():
    return fit("gelu", 8, "minimax", dtype="float64")


def _every_value(dtype: str) -> np.ndarray:
    """Every finite value of a 16-bit format from numpy's bit patterns (independent of torch): float16 by
    numpy's own type, bfloat16 as the top half of a float32."""
    bits = np.arange(2**16, dtype=np.uint32)
    v = bits.astype(np.uint16).view(np.float16) if dtype == "float16" else (bits << 16).view(np.float32)
    v = v[np.isfinite(v)].astype(float)
    return np.unique(v) + 0.0


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("lo, hi", [(-3.0, 3.0), (0.1, 7.3)])
def test_half_inputs_are_every_representable_value(dtype, lo, hi):
    x = P.inputs(lo, hi, dtype)
    v = _every_value(dtype)
    want = v[(v >= lo) & (v <= hi)]
    assert x.shape == want.shape and np.array_equal(x, want), np.setxor1d(x, want)[:10]
    if lo < 0 < hi:  # "a few tens of thousands" (issue 13): 2^7 or 2^10 values per binade, ~130 or ~25
        # binades each side
        assert 10_000 < x.size < 100_000, x.size
    assert np.all(np.diff(x) > 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_inputs_hold_the_neighbourhoods_of_the_points_around(dtype):
    nd = np.float32 if dtype == "float32" else np.float64
    around = [-2.3678553, 0.3, 3.0]
    x = P.inputs(-3.0, 3.0, dtype, around=around)
    assert np.all(x.astype(nd).astype(float) == x), "not representable"
    assert x[0] == -3.0 and x[-1] == 3.0 and np.all(np.diff(x) > 0)
    assert x.size >= (P.DENSE if dtype == "float32" else P.DENSE64) * 0.99
    for p in around:
        c = nd(p)
        ups = [c]
        for _ in range(P.NEIGHBOURS):
            ups.append(np.nextafter(ups[-1], nd(np.inf)))
        want = [float(u) for u in ups if float(u) <= 3.0]
        missing = [w for w in want if w not in set(x.tolist())]
        assert not missing, (p, missing[:5])


def _layer_errors(rec, dtype, backend, x):
    """The SLAF layer's own output on x in `dtype` (parameters in dtype), against float64 gelu etc."""
    layer = SLAF.from_fit(rec, backend=backend, dtype=getattr(torch, dtype))
    with torch.no_grad():
        y = layer(torch.from_numpy(x).to(getattr(torch, dtype))).double().numpy()
    f = get_target(rec.target)(x)
    return np.abs(f - y)


def _cases():
    out = [("fused", d) for d in ("float64", "float32")] + [("reference", d) for d in P.DTYPES]
    return out + [("triton", d) for d in ("float32", "bfloat16", "float16")]


@pytest.mark.parametrize("backend, dtype", _cases())
def test_achieved_error_is_the_layers_error_bit_for_bit(gelu8, backend, dtype):
    if backend not in available_backends(torch.ones(1, dtype=getattr(torch, dtype))):
        pytest.skip(f"{backend} does not run on cpu {dtype} here")  # triton needs TRITON_INTERPRET=1 on cpu
    a = P.achieved_error(gelu8, dtype, backend=backend)
    around = [gelu8.max_error_at, *P._extrema(P.FitProblem(get_target("gelu"), P.get_basis("power"), "raw",
                                                         (-3.0, 3.0)), gelu8.polynomial(), 8)]
    around = {"float32": around, "float64": around[:1]}.get(dtype, ())  # float64: max_error_at only
    x = P.inputs(-3.0, 3.0, dtype, around=around)
    e = _layer_errors(gelu8, dtype, backend, x)
    i = int(np.argmax(e))
    assert (a.max_error, a.at, a.points) == (e[i], x[i], x.size), (a, e[i], x[i])


def test_backends_differ_by_rounding_only(gelu8):
    """The fused C kernel and the reference in float32 run the same recurrence; their achieved errors differ
    by rounding of K = 9 terms: at most 2 K eps32 max|f| (max|f| = 3 on [-3, 3])."""
    fused = P.achieved_error(gelu8, "float32", backend="fused")
    ref = P.achieved_error(gelu8, "float32", backend="reference")
    assert abs(fused.max_error - ref.max_error) <= 2 * 9 * EPS32 * 3.0, (fused, ref)


# Golden 7a (issue 13): in float64 achieved_error and max_error evaluate the same polynomial, and differ only
# in the order of the roundings (the kernel's t = scale x + shift and recurrence against numpy's mapped t and
# Clenshaw): a few ulps of |f| <= 3, about 1e-15. The cases have max_error >= 1e-3, so that stays under the
# issue's 1e-12 relative; the inputs include the point where max_error is attained.
@pytest.mark.parametrize("target, degree, method, basis", [
    ("gelu", 8, "minimax", "chebyshev"), ("tanh", 6, "lstsq", "legendre"), ("silu", 6, "lstsq", "chebyshev"),
    ("gelu", 5, "lstsq", "power"), ("sigmoid", 3, "minimax", "hermite"), ("elu", 10, "minimax", "legendre"),
    ("gelu", 8, "rational", "chebyshev"), ("tanh", 6, "rational-minimax", "chebyshev"),
])
def test_golden_float64_achieved_error_equals_max_error(target, degree, method, basis):
    rec = fit(target, degree, method, basis)
    assert rec.max_error >= 1e-3
    a = P.achieved_error(rec, "float64")
    assert abs(a.max_error - rec.max_error) <= 1e-12 * rec.max_error, (rec.max_error, rec.max_error_at, a)


# Golden 7b (issue 13): float32 adds the rounding of inputs, coefficients, 9 recurrence steps and the output,
# each a few eps32 of max|f|; the bound 64 eps32 max|f| covers them, and the max over the extremum
# neighbourhoods cannot fall below the exact max_error by more than the rounding either (lower bound).
def test_golden_float32_gelu_degree_8_lies_within_rounding_of_max_error(gelu8):
    a = P.achieved_error(gelu8, "float32")
    fmax = float(np.max(np.abs(get_target("gelu")(np.linspace(-3, 3, 6001)))))
    assert gelu8.max_error <= a.max_error <= gelu8.max_error + 64 * EPS32 * fmax, (gelu8.max_error, a)
    assert a.points > P.DENSE * 0.99


def test_narrower_dtypes_err_more_and_half_precision_by_about_an_ulp(gelu8):
    errs = {d: P.achieved_error(gelu8, d).max_error for d in P.DTYPES}
    assert errs["float64"] <= errs["float32"] < errs["float16"] < errs["bfloat16"], errs
    # bfloat16 near |y| = 3 has ulp 2^-6: the output rounding alone can reach half of it
    assert errs["bfloat16"] >= 2.0**-7, errs


def test_rational_power_form_is_the_fitted_function():
    rec = fit("tanh", 6, "rational-minimax")
    g = P.approximant(rec)
    a, q0, b = P.power_form(g)
    x = np.linspace(-3, 3, 1001)
    q = q0 + x * np.polynomial.polynomial.polyval(x, b)
    r = np.polynomial.polynomial.polyval(x, a) / (1 + q)
    assert np.max(np.abs(r - g(x))) <= 1e-13, np.max(np.abs(r - g(x)))
    # far off centre the powers of x cancel: (x - 105)^7 / 5^7 expanded loses 6 digits of float64
    off = dict(coefficients=(1, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005), denominator=(0.3, 0.1, 0.05),
               interval=(100.0, 110.0), variable="mapped", form="pau", basis="chebyshev", target="tanh")
    with pytest.raises(ValueError, match=r"type \(7, 3\) .* loses .* converted to powers of x"):
        P.achieved_error(off, "float32")


@pytest.mark.parametrize("dtype", P.DTYPES)
def test_native_relu_is_exact_and_native_gelu_errs_by_the_dtype(dtype):
    assert P.native_error("relu", -3, 3, dtype).max_error == 0.0  # relu of a representable x is x
    g = P.native_error("gelu", -3, 3, dtype)
    ulp_at_3 = 3.0 * {"float64": 2.0**-52, "float32": EPS32, "bfloat16": 2.0**-7, "float16": 2.0**-10}[dtype]
    assert 0 < g.max_error <= 4 * ulp_at_3, g  # a few ulps of the largest output, and not 0


def test_native_error_is_none_without_a_native_op():
    from slaf_approx.problem import FunctionTarget

    assert P.native_error(FunctionTarget(np.sin), -1, 1, "float32") is None
    assert P.native_error(get_target("swish").with_params(beta=2.0), -3, 3, "float32") is None
    assert P.native_error(get_target("swish"), -3, 3, "bfloat16") is not None  # beta = 1: F.silu


def test_bad_input_names_the_value_and_what_is_allowed(gelu8):
    with pytest.raises(ValueError, match="unknown dtype 'float8'; allowed: float64, float32, bfloat16"):
        P.achieved_error(gelu8, "float8")
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        P.achieved_error(gelu8, "float32", coef_dtype="int8")
    with pytest.raises(ValueError, match="finite interval"):
        P.inputs(1.0, 1.0, "float32")
    with pytest.raises(ValueError, match="backend must be 'auto'"):
        P.achieved_error(fit("tanh", 4, "rational"), "float32", backend="fused")


def test_kernel_mapping_is_the_bases_affine_map():
    scale, shift, _, _ = kernel_mapping((-1.0, 5.0), "mapped")
    x = np.array([-1.0, 2.0, 5.0])
    assert np.allclose(scale * x + shift, [-1.0, 0.0, 1.0], rtol=0, atol=4 * np.finfo(float).eps)
    assert math.isclose(kernel_mapping((-1.0, 5.0), "raw")[0], 1.0)


# ----------------------------------------------------------------------------------------------------
# fit(dtype=), the results table and the sweep key
# ----------------------------------------------------------------------------------------------------
def test_fit_records_carry_the_achieved_error_in_their_dtype(gelu8):
    plain = fit("gelu", 8, "minimax")  # without a dtype nothing is measured (no torch, no kernel build)
    assert math.isnan(plain.achieved_error) and math.isnan(plain.achieved_rms), plain
    assert plain.coefficients == gelu8.coefficients and gelu8.dtype == "float64"
    assert abs(gelu8.achieved_error - gelu8.max_error) <= 1e-12 * gelu8.max_error, gelu8
    rec = fit("gelu", 8, "minimax", dtype="bfloat16")
    want = P.achieved_error(rec, "bfloat16")
    assert (rec.dtype, rec.achieved_error, rec.achieved_rms) == ("bfloat16", want.max_error, want.rms_error)
    assert rec.achieved_error > 2 * rec.max_error  # bfloat16's rounding dominates at degree 8
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        fit("gelu", 8, dtype="half")


def test_results_table_keeps_the_dtype_fields_and_reads_old_tables(tmp_path, gelu8):
    from slaf_approx import results

    rec = fit("tanh", 5, "lstsq", dtype="float16")
    results.write_table([rec, gelu8], tmp_path / "results")
    for suffix in (".csv", ".jsonl"):
        rows = results.read_table(tmp_path / f"results{suffix}")
        assert [(r["dtype"], r["achieved_error"], r["achieved_rms"]) for r in rows] == [
            (rec.dtype, rec.achieved_error, rec.achieved_rms), ("float64", gelu8.achieved_error,
                                                              gelu8.achieved_rms)]
    old = {k: v for k, v in gelu8.to_dict().items() if k not in ("dtype", "achieved_error", "achieved_rms")}
    r = results.check_row(results.normalise_row(old))  # an old table's row loads as it was
    assert r.keys() == old.keys() and r["max_error"] == gelu8.max_error
    with pytest.raises(results.RowError, match="'float8' is not a dtype"):
        results.check_row(results.normalise_row(dict(gelu8.to_dict(), dtype="float8")))
    with pytest.raises(results.RowError, match="achieved_error"):
        results.check_row(results.normalise_row(dict(gelu8.to_dict(), achieved_error=-1.0)))


def test_the_sweep_key_includes_the_dtype():
    from slaf_approx.sweep import plan

    keys = {d: plan(["gelu"], ["chebyshev"], [4], ["minimax"], [(-3.0, 3.0)], dtype=d)[0].keys()[0]
            for d in P.DTYPES}
    assert len(set(keys.values())) == len(P.DTYPES), keys


def test_cli_fit_dtype(capsys):
    import json

    from slaf_approx import cli

    assert cli.main(["fit", "gelu", "-n", "6", "--method", "minimax", "--dtype", "float16", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["dtype"] == "float16" and d["achieved_error"] > d["max_error"]
    assert cli.main(["fit", "gelu", "-n", "6", "--dtype", "float8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'float8'" in err[0], err


# ----------------------------------------------------------------------------------------------------
# The floor in the report
# ----------------------------------------------------------------------------------------------------
def test_floor_degree_and_native_degree_follow_their_definitions():
    from slaf_approx.report.data import Floor

    exact = {2: 1e-1, 4: 1e-2, 6: 1e-3, 8: 1e-4, 10: 1e-5}
    fl = Floor("bfloat16", {2: 1e-1, 4: 1.3e-2, 6: 9e-3, 8: 8e-3, 10: 8.5e-3}, 1e-2, exact)
    assert fl.best == 8e-3 and fl.floor_degree() == 6  # 9e-3 <= 1.5 * 8e-3 < 1.3e-2
    assert fl.native_degree() == 6  # the lowest degree with achieved <= native
    still_falling = Floor("float32", {d: 1.01 * e for d, e in exact.items()}, 1e-7, exact)
    assert still_falling.floor_degree() is None and still_falling.native_degree() is None
    assert Floor("float16", fl.achieved, None, exact).native_degree() is None


@pytest.fixture(scope="module")
def gelu_rows():
    from slaf_approx.fit import fit_degrees

    return [r.to_dict() for r in fit_degrees("gelu", [2, 4, 6, 8, 10, 12, 14], "minimax")]


def test_report_floors_measure_the_minimax_series_per_dtype(gelu_rows):
    from slaf_approx.report.data import floors, groups
    from slaf_approx.report.tables import floor_table

    (g,) = groups(gelu_rows)
    fls = {f.dtype: f for f in floors(g, ("float32", "bfloat16"))}
    for r in gelu_rows:
        assert fls["bfloat16"].achieved[r["degree"]] == P.achieved_error(r, "bfloat16").max_error
    assert fls["bfloat16"].native == P.native_error("gelu", -3, 3, "bfloat16").max_error
    # bfloat16 stops gaining by degree 10 (ulp 2^-6 near |y| = 3); float32 still follows the exact error
    assert fls["bfloat16"].floor_degree() is not None and fls["bfloat16"].floor_degree() <= 10, fls
    assert fls["float32"].floor_degree() is None, fls["float32"]
    text = floor_table([(g, list(fls.values()))])
    assert "| gelu on [-3, 3] | float32 |" in text and "not reached up to n = 14" in text, text


def test_error_figure_draws_the_achieved_error_per_dtype(gelu_rows):
    from slaf_approx.report.data import floors, groups
    from slaf_approx.report.figures import error_figure

    (g,) = groups(gelu_rows)
    fls = floors(g, ("float32", "bfloat16"))
    fig = error_figure(g, "gelu", floors=fls)
    ax = fig.axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_color() in ("tab:purple", "tab:brown")]
    assert len(dashed) == 4  # per dtype the achieved series and the native op's level
    ys = sorted(float(np.max(ln.get_ydata())) for ln in dashed)
    want = sorted([max(fls[0].achieved.values()), fls[0].native, max(fls[1].achieved.values()),
                   fls[1].native])
    assert np.allclose(ys, want, rtol=1e-12), (ys, want)
    labels = [t.get_text() for t in fig.axes[len(fig.axes) // 2].get_legend().get_texts()]
    assert any("in bfloat16 (- -); native op in bfloat16" in s for s in labels), labels


def test_run_and_report_take_the_floor_dtypes():
    from slaf_approx import cli
    from slaf_approx.report.data import REPORT_DTYPES

    p = cli.build_parser()
    assert cli._dtypes(p.parse_args(["report"])) == REPORT_DTYPES
    assert cli._dtypes(p.parse_args(["run", "--dtypes", "bfloat16"])) == ("bfloat16",)
    assert cli._dtypes(p.parse_args(["report", "--dtypes"])) == ()  # the flag alone: no floor
    assert cli.main(["report", "--dtypes", "float8"]) == 2
