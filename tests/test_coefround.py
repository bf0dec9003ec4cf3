"""Coefficients fitted for a format (issue 13 item 3): the rounding, the rounding-aware search, fit's
coef_dtype, and golden test 7c."""

import math

import numpy as np
import pytest
import torch

from slaf_approx.cli import main
from slaf_approx.coefround import COEF_DTYPES, _Search, constant_floor, round_coefficients, round_to
from slaf_approx.fit import fit
from slaf_approx.precision import achieved_error
from slaf_approx.problem import FitProblem, measure
from slaf_approx.report import fmt, write_report
from slaf_approx.sweep import DEFAULT_SUITE

TORCH = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _samples(rng) -> np.ndarray:
    """Values over every binade the formats have, with subnormals, ties and powers of two among them."""
    x = rng.standard_normal(4000) * np.exp2(rng.integers(-140, 20, 4000))
    ties = np.r_[1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-24,
                 2.0**-24 * 1.5, 2.0**-133 * 2.5]
    edges = np.r_[np.nextafter(1.0, 0), 65504.0, 65519.0, 2.0**-25, 2.0**-134]
    x = np.r_[x, ties, edges]
    return np.r_[x, -x, 0.0]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_round_to_nearest_is_torchs_conversion_bit_for_bit(dtype):
    # torch's float64 -> dtype conversion rounds to nearest, ties to even (IEEE 754), overflow to inf
    x = _samples(np.random.default_rng(0))
    want = torch.tensor(x, dtype=torch.float64).to(TORCH[dtype]).double().numpy()
    got = round_to(x, dtype)
    bad = np.flatnonzero(~((got == want) | (np.isnan(got) & np.isnan(want))))
    assert bad.size == 0, [(x[i], got[i], want[i]) for i in bad[:5]]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_round_down_and_up_bracket_x_by_adjacent_values(dtype):
    x = _samples(np.random.default_rng(1))
    x = x[np.abs(x) < 6e4]
    lo, hi = round_to(x, dtype, "down"), round_to(x, dtype, "up")
    assert np.all(round_to(lo, dtype) == lo) and np.all(round_to(hi, dtype) == hi)
    assert np.all(lo <= x) and np.all(x <= hi)
    exact = lo == hi
    assert np.all(round_to(x[exact], dtype) == x[exact])
    # adjacent: nothing representable lies strictly between them (the value just above lo rounds up to hi)
    inner = ~exact
    assert np.all(round_to(np.nextafter(lo[inner], np.inf), dtype, "up") == hi[inner])


def test_fit_coefficients_are_representable_and_round_trip_through_the_dtype():
    for dtype in ("bfloat16", "float16", "float32"):
        r = fit("gelu", 10, "minimax", coef_dtype=dtype)
        c = np.asarray(r.coefficients)
        back = torch.tensor(c, dtype=torch.float64).to(TORCH[dtype]).double().numpy()
        assert np.array_equal(back, c), (dtype, c[back != c], back[back != c])
        assert r.coef_dtype == dtype and r.error_kind == "absolute"
        # the record's max error is that of the rounded coefficients, measured exactly
        exact = measure(FitProblem.make("gelu"), r.polynomial())[0]
        assert r.max_error == exact, (r.max_error, exact)
        assert r.max_error <= r.naive_error, r
        assert dtype in r.note


def test_float64_coef_dtype_is_the_plain_fit():
    for method in ("lstsq", "minimax"):
        a, b = fit("swish", 9, method), fit("swish", 9, method, coef_dtype="float64")
        assert a.coefficients == b.coefficients and a.max_error == b.max_error and a.note == b.note
        assert b.coef_dtype == "float64" and math.isnan(b.naive_error)


@pytest.mark.parametrize("bad", ["bfloat17", "float8", "", 16, "Float16"])
def test_bad_coef_dtype_names_the_value_and_the_allowed_ones(bad):
    with pytest.raises(ValueError) as e:
        fit("gelu", 4, coef_dtype=bad)
    assert repr(bad) in str(e.value) and all(d in str(e.value) for d in COEF_DTYPES), e.value


@pytest.mark.parametrize("kw, needle", [
    (dict(method="rational"), "rational fits take none"),
    (dict(method="minimax", pin=[0.0]), "takes no pin"),
    (dict(method="minimax", error="relative"), "takes no error"),
])
def test_coef_dtype_refuses_what_rounding_cannot_keep(kw, needle):
    with pytest.raises(ValueError, match=needle):
        fit("tanh", 6, coef_dtype="bfloat16", **kw)


def test_refit_keeps_the_fixed_coefficients_and_solves_the_discrete_minimax():
    p = FitProblem.make("tanh", "chebyshev", (-3.0, 3.0))
    c = np.asarray(fit(p, 9, "minimax").coefficients)
    s = _Search(p, 9)
    start = c.copy()
    start[[1, 3]] = round_to(c[[1, 3]], "bfloat16")
    free = [5, 7, 9]
    out, err = s.refit(start, free)
    fixed = [k for k in range(10) if k not in free]
    assert np.array_equal(out[fixed], start[fixed]), (out[fixed], start[fixed])
    assert err == s.error(out) and err < s.error(start), (err, s.error(start))
    # the LP's optimum: no one-coordinate nudge of a free coefficient lowers the grid error by more than the
    # LP's tolerance (1e-7 relative to the error, scipy's HiGHS default feasibility tolerance)
    for k in free:
        for h in (1e-6, -1e-6):
            nudged = out.copy()
            nudged[k] += h * err
            assert s.error(nudged) >= err * (1 - 1e-6), (k, h, s.error(nudged), err)


def test_parity_and_weight_are_kept():
    r = fit("tanh", 9, "minimax", parity="odd", weight="normal:1.5", coef_dtype="bfloat16")
    assert all(c == 0.0 for c in r.coefficients[0::2]), r.coefficients
    assert r.weighted_max_error <= r.naive_error, r
    assert math.isfinite(r.weighted_max_error)


def test_cli_fit_coef_dtype(capsys):
    assert main(["fit", "tanh", "-n", "7", "--method", "minimax", "--coef-dtype", "float16", "--json"]) == 0
    import json

    rec = json.loads(capsys.readouterr().out)
    assert rec["coef_dtype"] == "float16" and rec["max_error"] <= rec["naive_error"], rec
    assert np.all(np.asarray(rec["coefficients"], dtype=np.float16).astype(float) == rec["coefficients"])


@pytest.mark.parametrize("argv, needle", [
    (["fit", "gelu", "-n", "4", "--coef-dtype", "bfloat17"], "bfloat17"),
    (["fit", "gelu", "-n", "4", "--method", "rational", "--coef-dtype", "float16"], "take none"),
])
def test_cli_bad_coef_dtype_is_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err, err


# --- golden test 7c -------------------------------------------------------------------------------------
def test_rounding_aware_beats_naive_rounding_in_bfloat16_on_half_the_default_suite():
    # issue 13, golden test 7c: in bfloat16 the rounding-aware fit beats naive rounding on at least half of
    # the (target, degree) pairs of the default suite (slaf_approx.sweep.DEFAULT_SUITE: its targets and
    # degrees; minimax in the default basis, chebyshev), and is never worse. Both errors are exact
    # (problem.measure of the polynomial with the stored coefficients).
    pairs = [(t, d) for t in DEFAULT_SUITE["targets"] for d in DEFAULT_SUITE["degrees"]]
    wins, worse = [], []
    for target, degree in pairs:
        p = FitProblem.make(target, "chebyshev", (-3.0, 3.0))
        c = fit(p, degree, "minimax").coefficients
        r = round_coefficients(p, c, "bfloat16")
        naive = measure(p, p.polynomial(round_to(c, "bfloat16")))[0]
        assert r.naive_error == naive
        assert r.error == measure(p, p.polynomial(r.coefficients))[0]
        if r.error < naive:
            wins.append((target, degree))
        if r.error > naive:
            worse.append((target, degree, r.error, naive))
    assert not worse, worse
    assert 2 * len(wins) >= len(pairs), (len(wins), len(pairs), sorted(set(pairs) - set(wins)))


# --- the floor and the report -----------------------------------------------------------------------------
@pytest.mark.parametrize("target, basis", [("gelu", "chebyshev"), ("swish", "legendre"),
                                           ("relu", "chebyshev")])
def test_no_representable_polynomial_beats_the_constant_floor(target, basis):
    # constant_floor bounds every polynomial whose constant coefficient is representable: the rounding-aware
    # fits of every degree, and the float64 best with only c_0 moved to its nearest representable value
    p = FitProblem.make(target, basis)
    floor = constant_floor(p, "bfloat16")
    assert floor > 0, floor
    for n in (4, 12, 20):
        r = fit(p, n, "minimax", coef_dtype="bfloat16")
        assert r.coef_floor == floor and r.max_error >= floor, (n, r.max_error, floor)
        c = np.asarray(fit(p, n, "minimax").coefficients)
        c[0] = round_to(c[0], "bfloat16")
        assert measure(p, p.polynomial(c))[0] >= floor
    # the bound is not vacuous: with every other coefficient exact, the error at high degree approaches it
    # (f's mean m is c_0 of the best float64 fit up to E_n, so |c_0 - rounded c_0| <= floor + 2 E_20)
    assert measure(p, p.polynomial(c))[0] <= 4 * floor + 4 * fit(p, 20, "minimax").max_error


def test_constant_floor_is_nan_where_no_bound_is_known():
    assert math.isnan(constant_floor(FitProblem.make("gelu", "power"), "bfloat16"))
    assert math.isnan(constant_floor(FitProblem.make("gelu", weight="normal"), "bfloat16"))
    assert math.isnan(fit("gelu", 6, "lstsq", "power", coef_dtype="float16").coef_floor)


def test_report_shows_rounded_fits_in_their_own_section(tmp_path):
    plain = [fit("tanh", n, "minimax").to_dict() for n in (4, 8)]
    rounded = [fit("tanh", n, "minimax", coef_dtype=d).to_dict()
               for n in (4, 8) for d in ("bfloat16", "float16")]
    readme = write_report(plain + rounded, tmp_path, dtypes=()).read_text()  # no per-dtype floor section
    head, _, section = readme.partition("## Coefficients in a storage format")
    assert section, readme
    assert "bfloat16" not in head and "float16" not in head  # the float64 tables and plots hold plain fits
    assert "bfloat16: aware beats naive in" in section and "never worse" in section
    ach = [(r["coef_achieved_error"], r["naive_achieved_error"]) for r in rounded
           if r["coef_dtype"] == "float16"]
    better, worse = sum(a < n for a, n in ach), sum(a > n for a, n in ach)
    assert (f"(evaluated in float16: better in {better}, equal in {len(ach) - better - worse}, worse in "
            f"{worse} of {len(ach)})") in section, section
    # the table is split in parts of at most 8 columns, each repeating n: join the parts' degree-8 rows
    parts = [line for line in section.splitlines() if line.startswith("| 8 |")]
    cells = ["8"] + [c.strip() for line in parts for c in line.strip("|").split("|")[1:]]
    r8 = {r["coef_dtype"]: r for r in rounded if r["degree"] == 8}
    want = ["8", fmt(plain[1]["max_error"])]
    for d in ("bfloat16", "float16"):
        want += [fmt(r8[d][k]) for k in ("naive_error", "max_error", "coef_floor", "naive_achieved_error",
                                          "coef_achieved_error")]
    assert cells == want, (parts, want)


def test_achieved_errors_are_the_precision_modules_for_both_roundings():
    r = fit("swish", 10, "minimax", coef_dtype="float16")
    assert r.coef_achieved_error == achieved_error(r, "float16").max_error
    naive = dict(r.to_dict(), coefficients=round_to(fit("swish", 10, "minimax").coefficients, "float16"))
    assert r.naive_achieved_error == achieved_error(naive, "float16").max_error
    # in float16 arithmetic the error can only grow past the exact one by the output's rounding and the
    # arithmetic, never fall below the exact error by more than half an ulp of max|f| (~ 3 * 2**-11)
    assert r.coef_achieved_error >= r.max_error - 3.0 * 2.0**-11, r
