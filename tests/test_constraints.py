"""Weighted and relative-error minimax, pins and forced parity (lstsq and minimax), each certified."""

import json
import math

import numpy as np
import pytest

from slaf_approx import cli, sweep
from slaf_approx.bases import get_basis, to_mapped
from slaf_approx.fit import fit
from slaf_approx.problem import FitProblem, simple_zeros
from slaf_approx.remez import remez, remez_constrained

EPS = np.finfo(float).eps
CERT_RTOL = 1e-9  # the Remez stopping rule: (E - h) <= 1e-9 E, or resolution-limited


def _certified(r, scale=1.0):
    """de la Vallee Poussin for the weighted problem: h <= E_w <= weighted max, the gap within rtol (or,
    resolution-limited, within the exchange's rounding floor 4 (n + 2) eps max |w f|); h is a linear solve's
    result, so h <= max holds to that floor."""
    assert r.converged, r.note
    h, e = r.levelled_error, r.weighted_max_error
    floor = 4 * (r.degree + 2) * EPS * scale
    assert h <= e + floor, (h, e)
    bound = CERT_RTOL * e * (1 + 1e-6) if "resolution-limited" not in r.note else floor
    assert e - h <= bound, (r.degree, h, e, (e - h) / e, r.note)


def _dense_rel(f, p, lo, hi, n=400_000):
    x = np.linspace(lo, hi, n)  # n even: 0 is not a grid point, where (f - p)/f is 0/0
    return float(np.max(np.abs((f(x) - p(x)) / f(x))))


# --- relative error --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 5, 9, 13])
def test_relative_minimax_of_tanh_is_certified(n):
    # Issue 13's golden test: tanh has a simple zero at 0, pinned (the odd fit satisfies it by itself), so
    # (tanh - p)/tanh stays bounded and the weighted exchange's certificate holds: h <= E_rel <= max,
    # (max - h) <= 1e-9 max.
    r = fit("tanh", n, "minimax", "chebyshev", (-3.0, 3.0), error="relative")
    assert r.error_kind == "relative" and r.pin == [0.0] and "zero(s) at x = 0" in r.note, r
    _certified(r)
    # the reported sup is the true one: a dense sample (off 0) reaches it and does not pass it
    dense = _dense_rel(np.tanh, r.polynomial(), -3.0, 3.0)
    assert dense <= r.weighted_max_error * (1 + 1e-12) and dense >= r.weighted_max_error * (1 - 1e-6), \
        (dense, r.weighted_max_error)
    # E_rel <= the relative error of any competitor satisfying p(0) = 0, e.g. the absolute minimax fit
    a = fit("tanh", n, "minimax", "chebyshev", (-3.0, 3.0))
    assert r.levelled_error <= _dense_rel(np.tanh, a.polynomial(), -3.0, 3.0), (r.levelled_error, a)
    # max_error stays the unweighted sup |f - p|
    assert abs(r.max_error - float(np.max(np.abs(np.tanh(x := np.linspace(-3, 3, 200_001))
                                                  - r.polynomial()(x))))) <= 1e-6 * r.max_error


@pytest.mark.parametrize("name", ["gelu", "swish"])
def test_relative_minimax_pins_the_zero_of_an_asymmetric_target(name):
    # gelu and swish are linear + even: 1/|f| is not even, so the full-interval exchange runs, with the
    # zero at 0 pinned (p(0) = f(0) = 0) as the constraint that keeps (f - p)/f bounded.
    r = fit(name, 8, "minimax", error="relative")
    _certified(r)
    assert r.polynomial()(np.zeros(1))[0] == pytest.approx(0.0, abs=1e-15), r.coefficients


def test_relative_minimax_finds_a_zero_between_grid_points():
    # tanh(x - 0.3): its zero 0.3 is no grid point of the search; bisection places it to adjacent floats
    f = lambda x: np.tanh(x - 0.3)  # noqa: E731
    r = fit(f, 7, "minimax", error="relative")
    assert len(r.pin) == 1 and abs(r.pin[0] - 0.3) <= 4 * EPS, r.pin
    _certified(r)
    x = np.linspace(-3, 3, 100_001)
    x = x[np.abs(x - 0.3) > 1e-6]
    assert float(np.max(np.abs((f(x) - r.polynomial()(x)) / f(x)))) <= r.weighted_max_error * (1 + 1e-9)


def test_tol_bounds_the_relative_error_of_a_relative_fit():
    # with error="relative", tol is on max |(f - p)/f|: the chosen degree meets it, the one below does not
    r = fit("tanh", tol=1e-4, method="minimax", error="relative")
    assert r.weighted_max_error <= 1e-4 and "weighted max error <= tol" in r.note, r
    below = fit("tanh", r.degree - 1, "minimax", error="relative")
    assert below.weighted_max_error > 1e-4, (r.degree, below.weighted_max_error)


def test_relative_error_of_a_target_without_zeros():
    # softplus > 0: w = 1/softplus is smooth and the relative fit has no pin
    r = fit("softplus", 6, "minimax", error="relative")
    assert r.pin == [] and "zero" not in r.note
    _certified(r)


@pytest.mark.parametrize("name, match", [("relu", "is 0 at the interval's end x = -3.0"),
                                         ("abs", "zero at x = 0.0 that is not simple")])
def test_relative_error_refuses_zeros_it_cannot_pin(name, match):
    with pytest.raises(ValueError, match=match):
        fit(name, 6, "minimax", error="relative")


def test_simple_zeros_refuses_a_run_of_zeros_inside():
    f = lambda x: np.where(np.abs(x) < 1, 0.0, x)  # noqa: E731
    with pytest.raises(ValueError, match="not simple"):
        simple_zeros(f, -3.0, 3.0)


# --- weights -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tanh", "gelu", "sigmoid", "elu"])
@pytest.mark.parametrize("n", [2, 5, 8])
def test_constant_weight_equals_the_unweighted_fit(name, n):
    # Issue 13's golden test. max |c (f - p)| = c max |f - p|: the same best p, levelled error times c. The
    # weighted exchange starts elsewhere (least squares) and stops within the certificate's rtol: both fits
    # are within 1e-9 E_n of E_n, so they agree to the Remez tolerance, not to the last bit.
    p = FitProblem.make(name)
    c = 2.5
    a = remez(p.f_t, n, p.breaks_t())
    b = remez_constrained(p.f_t, n, p.breaks_t(), weight=lambda t: np.full_like(t, c))
    assert a.converged and b.converged, (a.note, b.note)
    assert abs(b.levelled_error / c - a.levelled_error) <= CERT_RTOL * a.max_error, (a, b)
    assert abs(b.max_error / c - a.max_error) <= CERT_RTOL * a.max_error, (a, b)
    t = np.linspace(-1, 1, 2001)
    diff = np.max(np.abs(np.polynomial.chebyshev.chebval(t, b.cheb - a.cheb)))
    assert diff <= 1e-6 * a.max_error, (diff, a.max_error)


@pytest.mark.parametrize("sigma", [0.75, 1.5])
def test_normal_weight_minimax_is_certified_and_best_in_its_norm(sigma):
    w = f"normal:{sigma}"
    r = fit("gelu", 8, "minimax", weight=w)
    scale = FitProblem.make("gelu", weight=w).weight_scale()
    _certified(r, scale)
    # the unweighted minimax fit is a competitor: its weighted error is no smaller than E_w >= h
    a = fit("gelu", 8, "minimax")
    x = np.linspace(-3, 3, 200_001)
    dens = np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    g = FitProblem.make("gelu").f(x)
    assert float(np.max(np.abs(dens * (g - a.polynomial()(x))))) >= r.levelled_error
    assert float(np.max(np.abs(dens * (g - r.polynomial()(x))))) <= r.weighted_max_error * (1 + 1e-12)


# --- pins ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["lstsq", "minimax"])
@pytest.mark.parametrize("basis", ["chebyshev", "legendre", "hermite"])
@pytest.mark.parametrize("pins", [[0.0], [-2.2, 0.0, 1.3]])
def test_a_pinned_fit_interpolates_at_its_pins(method, basis, pins):
    # Issue 13's golden test: p(X) = f(X) to 1e-14 of max |f| (the substitution makes it exact up to the
    # rounding of evaluating p). The Hermite basis on [-1, 1] is ill-conditioned (coefficients of ~400 sum
    # to ~3): there the bound is its evaluation's own rounding, (n + 2) eps sum |c_k He_k(t)|.
    r = fit("gelu", 8, method, basis, (-3.0, 3.0), pin=pins)
    p, f = FitProblem.make("gelu"), r.polynomial()
    X = np.asarray(pins)
    scale = float(np.max(np.abs(p.f(np.linspace(-3, 3, 1001)))))
    tol = 1e-14 * scale
    if basis == "hermite":
        terms = np.abs(get_basis(basis).vander(to_mapped(X, -3.0, 3.0), 8) * np.asarray(r.coefficients))
        tol = max(tol, 10 * EPS * float(np.max(terms.sum(1))))
    assert np.max(np.abs(f(X) - p.f(X))) <= tol, (f(X) - p.f(X), tol)
    assert r.pin == pins
    if method == "minimax":
        _certified(r)
        free = fit("gelu", 8, "minimax", basis)
        lsq = fit("gelu", 8, "lstsq", basis, pin=pins)
        # a constraint cannot lower the best error; the pinned minimax beats the pinned lstsq
        assert free.max_error <= r.max_error * (1 + 1e-9), (free.max_error, r.max_error)
        assert r.max_error <= lsq.max_error * (1 + 1e-9), (r.max_error, lsq.max_error)


@pytest.mark.parametrize("weight", ["uniform", "normal:1.5"])
@pytest.mark.parametrize("pins", [[0.0], [-1.0, 0.5, 2.0]])
def test_pinned_lstsq_is_the_kkt_solution(weight, pins):
    # brute force, independent of the null-space method: the KKT system of min sum w (V c - f)^2 subject to
    # V(X) c = f(X), on the same quadrature, solved as one dense linear system
    n = 9
    r = fit("swish", n, "lstsq", "chebyshev", (-3.0, 3.0), weight=weight, pin=pins)
    p = FitProblem.make("swish", weight=weight)
    x, w = p.quadrature(n)
    A = np.polynomial.chebyshev.chebvander(to_mapped(x, -3.0, 3.0), n)
    B = np.polynomial.chebyshev.chebvander(to_mapped(np.asarray(pins), -3.0, 3.0), n)
    k = len(pins)
    K = np.block([[A.T @ (w[:, None] * A), B.T], [B, np.zeros((k, k))]])
    rhs = np.r_[A.T @ (w * p.f(x)), p.f(np.asarray(pins))]
    ref = np.linalg.solve(K, rhs)[: n + 1]
    np.testing.assert_allclose(r.coefficients, ref, rtol=0, atol=1e-11 * np.max(np.abs(ref)))


def test_too_many_pins_leave_no_free_coefficient():
    with pytest.raises(ValueError, match="leave no free coefficient at degree 1"):
        fit("gelu", 1, "minimax", pin=[-1.0, 1.0])
    with pytest.raises(ValueError, match="leave no free coefficient at degree 1"):
        fit("gelu", 1, "lstsq", pin=[-1.0, 1.0])


# --- parity --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, name, parity", [("minimax", "tanh", "odd"), ("minimax", "abs", "even"),
                                                  ("lstsq", "gelu", "even"), ("lstsq", "gelu", "odd"),
                                                  ("lstsq", "tanh", "odd")])
@pytest.mark.parametrize("n", [4, 7])
def test_forced_parity_has_exactly_zero_other_coefficients(method, name, parity, n):
    # Issue 13's golden test: an even (odd) fit in the Chebyshev basis has odd (even) coefficients exactly 0
    r = fit(name, n, method, "chebyshev", (-3.0, 3.0), parity=parity)
    other = np.asarray(r.coefficients)[1 if parity == "even" else 0:: 2]
    assert np.all(other == 0.0), r.coefficients
    assert r.parity == parity
    if method == "minimax":
        _certified(r)
    else:  # under a symmetric measure the parity-forced fit is the fit of f's even (odd) part
        g = FitProblem.make(name).f
        s = 1.0 if parity == "even" else -1.0
        part = fit(lambda x: 0.5 * (g(x) + s * g(-x)), n, "lstsq", "legendre", (-3.0, 3.0))
        lp = fit(name, n, "lstsq", "legendre", (-3.0, 3.0), parity=parity)
        np.testing.assert_allclose(lp.coefficients, part.coefficients, rtol=0, atol=1e-13)


@pytest.mark.parametrize("basis", ["power", "chebyshev", "legendre", "hermite"])
def test_every_basis_function_has_the_parity_of_its_degree(basis):
    # what Basis.parity_columns relies on
    b = get_basis(basis)
    t = np.linspace(0.05, 1.0, 20)
    V, W = b.vander(t, 9), b.vander(-t, 9)
    np.testing.assert_array_equal(W, V * (-1.0) ** np.arange(10))


def test_parity_with_pins():
    r = fit("tanh", 7, "minimax", parity="odd", pin=[0.0, 1.0])
    assert r.pin == [1.0]  # an odd p is 0 at 0 = tanh(0): that pin holds by itself
    assert abs(r.polynomial()(np.ones(1))[0] - math.tanh(1.0)) <= 1e-14
    _certified(r)
    with pytest.raises(ValueError, match=r"an odd polynomial is 0 at 0, but sigmoid\(0\) = 0.5"):
        fit("sigmoid", 5, "lstsq", parity="odd", pin=[0.0])
    with pytest.raises(ValueError, match="pin X or -X, not both"):
        fit("tanh", 5, "lstsq", parity="odd", pin=[-1.0, 1.0])


# --- arguments, records, CLI ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(pin=[3.5]), r"pin 3.5 is not inside the interval \[-3.0, 3.0\]"),
    (dict(pin=[1.0, 1.0]), "pins must be distinct"),
    (dict(pin=["a"]), "pin must be numbers"),
    (dict(parity="even", interval=(-2.0, 3.0)), r"needs an interval symmetric about 0, got \[-2.0, 3.0\]"),
    (dict(parity="both"), "unknown parity 'both'; allowed: even, odd"),
    (dict(parity="odd", method="minimax"), "parity 'odd' forced, but the target is 'linear\\+even'"),
    (dict(error="percent"), "unknown error kind 'percent'; allowed: absolute, relative"),
    (dict(error="relative", method="lstsq"), "lstsq fits take no relative error"),
    (dict(pin=[0.0], method="gradient", steps=10), "gradient fits take no pin"),
    (dict(parity="even", method="rational"), "rational fits take no parity"),
])
def test_bad_constraints_are_refused_naming_the_value(kwargs, match):
    kw = dict(method="lstsq") | kwargs
    with pytest.raises(ValueError, match=match):
        fit("gelu", 6, kw.pop("method"), **kw)


def test_new_record_fields_survive_a_results_table(tmp_path):
    r = fit("tanh", 5, "minimax", error="relative")
    q = fit("gelu", 4, "lstsq", pin=[0.0, 1.0], parity="")
    sweep.write_table([r, q], tmp_path / "t")
    for suffix in (".csv", ".jsonl"):
        rows = sweep.read_table((tmp_path / "t").with_suffix(suffix))
        assert rows[0]["error_kind"] == "relative" and rows[0]["pin"] == [0.0]
        assert rows[0]["weighted_max_error"] == r.weighted_max_error
        assert rows[1]["pin"] == [0.0, 1.0] and math.isnan(rows[1]["weighted_max_error"])


def test_cli_fit_takes_error_pin_and_parity(capsys):
    assert cli.main(["fit", "tanh", "-n", "7", "--method", "minimax", "--error", "relative", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["error_kind"] == "relative" and d["pin"] == [0.0] and d["converged"]
    assert d["levelled_error"] <= d["weighted_max_error"]
    argv = ["fit", "gelu", "-n", "6", "--pin", "0", "--pin", "1.5", "--parity", "even", "--json"]
    assert cli.main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["pin"] == [0.0, 1.5] and d["parity"] == "even" and d["coefficients"][1::2] == [0.0] * 3
    assert cli.main(["fit", "gelu", "-n", "6", "--pin", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pin 7.0 is not inside the interval" in err, err


# --- an independent solver -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, n, kwargs", [
    ("gelu", 8, dict(pin=[-2.2, 0.0, 1.3])),  # asymmetric pins on a symmetric target: no half-interval
    ("tanh", 7, dict(error="relative")),
    ("gelu", 6, dict(weight="normal:1")),
    ("tanh", 5, dict(pin=[0.5], weight="normal:0.8")),
    ("swish", 6, dict(error="relative", pin=[2.0])),
])
def test_constrained_minimax_agrees_with_a_linear_program(name, n, kwargs):
    # The discretised problem min E s.t. |w_i (f_i - p(x_i))| <= E on a grid, p(X) = f(X) at the pins,
    # solved as a linear program (scipy's HiGHS), is independent of the exchange: its optimum E_grid is at
    # most the true E_w, so E_grid <= weighted_max_error; and on a dense grid it is close to E_w >= h.
    from scipy.optimize import linprog

    r = fit(name, n, "minimax", "chebyshev", (-3.0, 3.0), **kwargs)
    p = FitProblem.make(name, **{k: v for k, v in kwargs.items() if k == "weight"})
    x = np.linspace(-3.0, 3.0, 6000)  # an even count: no grid point at 0, where (f - p)/f is 0/0
    x = x[np.abs(x[:, None] - np.asarray(r.pin)[None, :]).min(1) > 1e-9] if r.pin else x
    w = p.weights(x) / (np.abs(p.f(x)) if kwargs.get("error") == "relative" else 1.0)
    V = np.polynomial.chebyshev.chebvander(to_mapped(x, -3.0, 3.0), n)
    fx = p.f(x)
    # variables (c_0 .. c_n, E): minimise E with  w (f - V c) <= E  and  -w (f - V c) <= E
    A = np.block([[-w[:, None] * V, -np.ones((len(x), 1))], [w[:, None] * V, -np.ones((len(x), 1))]])
    b = np.r_[-w * fx, w * fx]
    eq = {}
    if r.pin:
        X = np.asarray(r.pin)
        VX = np.polynomial.chebyshev.chebvander(to_mapped(X, -3.0, 3.0), n)
        eq = dict(A_eq=np.c_[VX, np.zeros(len(X))], b_eq=p.f(X))
    lp = linprog(np.r_[np.zeros(n + 1), 1.0], A_ub=A, b_ub=b, bounds=[(None, None)] * (n + 2), **eq,
                 method="highs")
    assert lp.status == 0, lp.message
    e_grid = lp.x[-1]
    assert e_grid <= r.weighted_max_error * (1 + 1e-7), (e_grid, r.weighted_max_error)
    assert e_grid >= r.levelled_error * (1 - 1e-4), (e_grid, r.levelled_error)
