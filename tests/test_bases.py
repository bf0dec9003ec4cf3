"""Bases: evaluation, derivative, conversion, numpy export, interval mapping."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaf_approx.bases import BASES, MAX_DEGREE, SlafPolynomial, check_degree, check_interval, get_basis

EPS = np.finfo(float).eps
RNG = np.random.default_rng(20261128)


def _close(a, b, rtol, what):
    a, b = np.asarray(a), np.asarray(b)
    err = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    i = int(np.argmax(err))
    assert err[i] <= rtol, f"{what}: worst at index {i}: {a[i]!r} vs {b[i]!r} (rel err {err[i]:.3g})"


@pytest.mark.parametrize("name", sorted(BASES))
def test_vander_matches_evaluation(name):
    b = get_basis(name)
    t = RNG.uniform(-1, 1, 50)
    c = RNG.standard_normal(9)
    # Vandermonde times coefficients vs Clenshaw/Horner: same sum, rounding ~ degree * eps * sum |terms|
    scale = np.abs(b.vander(t, 8)) @ np.abs(c)
    err = np.abs(b.vander(t, 8) @ c - b.val(t, c)) / scale
    assert err.max() <= 16 * 9 * EPS, f"{name}: worst t = {t[err.argmax()]}"


@pytest.mark.parametrize("name,variable", [(b, "mapped") for b in sorted(BASES)] + [("power", "raw")])
def test_convert_round_trip_and_numpy_export(name, variable):
    lo, hi = -3.0, 2.0
    p = SlafPolynomial("chebyshev", tuple(RNG.standard_normal(7)), (lo, hi))
    q = p.convert(name, variable)
    x = np.linspace(lo, hi, 101)
    # rounding of the converted series: ~ (n + 1) eps sum_i |q_i phi_i(v)|, large where the new
    # basis needs large, cancelling coefficients (raw powers on [-3, 2], Hermite)
    size = np.abs(get_basis(name).vander(q.variable_of(x), q.degree)) @ np.abs(q.coef)
    tol = 16 * (q.degree + 1) * EPS * size
    for what, got in (("conversion", q(x)), ("numpy export", q.to_numpy()(x))):
        err = np.abs(got - p(x))
        i = int(np.argmax(err / tol))
        assert err[i] <= tol[i], f"{name}/{variable} {what}: worst x = {x[i]}: {got[i]!r} vs {p(x)[i]!r}"
    assert list(q.to_numpy().domain) == [lo, hi]
    back = q.convert("chebyshev")
    assert np.max(np.abs(back(x) - p(x)) / tol) <= 2.0


@pytest.mark.parametrize("name", sorted(BASES))
def test_derivative_against_numpy_chebyshev(name):
    lo, hi = -3.0, 3.0
    c = RNG.standard_normal(8)
    p = SlafPolynomial("chebyshev", tuple(c), (lo, hi)).convert(name)
    ref = np.polynomial.Chebyshev(c, domain=[lo, hi]).deriv(2)
    x = np.linspace(lo, hi, 41)
    _close(p.deriv(2)(x), ref(x), 1e3 * EPS, f"{name} second derivative")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=12),
       st.floats(-5, 0, exclude_max=True), st.floats(0.1, 5))
def test_raw_power_is_the_papers_form(coef, lo, width):
    """In the raw variable, coef[i] multiplies x**i exactly as in f(x) = sum a_i x^i."""
    hi = lo + width
    p = SlafPolynomial("power", tuple(coef), (lo, hi), "raw")
    x = np.linspace(lo, hi, 7)
    direct = sum(a * x**i for i, a in enumerate(coef))
    scale = sum(abs(a) * np.abs(x) ** i for i, a in enumerate(coef))
    assert np.all(np.abs(p(x) - direct) <= 4 * len(coef) * EPS * np.maximum(scale, 1e-300))


@pytest.mark.parametrize("bad", [-1, 65, 2.5, "3", True, None])
def test_bad_degree(bad):
    with pytest.raises(ValueError, match=f"degree must be an integer in \\[0, {MAX_DEGREE}\\]"):
        check_degree(bad)


@pytest.mark.parametrize("bad", [(1, 1), (2, -2), (float("nan"), 1), (0, float("inf")), (1,), "ab"])
def test_bad_interval(bad):
    with pytest.raises(ValueError, match="interval"):
        check_interval(bad)


def test_bad_basis_and_variable():
    with pytest.raises(ValueError, match="unknown basis 'fourier'; allowed: power, chebyshev"):
        get_basis("fourier")
    with pytest.raises(ValueError, match="raw variable is for the power basis only"):
        SlafPolynomial("chebyshev", (1.0,), (-1, 1), "raw")
