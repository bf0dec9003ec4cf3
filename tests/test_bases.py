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


# --- SlafPolynomial as a numpy.polynomial object ---------------------------------------------------
KINDS = [(b, "mapped") for b in sorted(BASES)] + [("power", "raw")]


def _pair(name, variable, interval, deg_p=6, deg_q=4):
    b = get_basis(name)
    p = SlafPolynomial(name, tuple(RNG.standard_normal(deg_p + 1)), interval, variable)
    q = SlafPolynomial(name, tuple(RNG.standard_normal(deg_q + 1)), interval, variable)
    window = b.window(interval, variable)
    return b, p, q, (b.kind(p.coef, domain=list(interval), window=window),
                     b.kind(q.coef, domain=list(interval), window=window))


def _size(b, s: SlafPolynomial, x):
    """sum_k |c_k phi_k(v)|: the scale of the rounding of evaluating s at x."""
    return np.abs(b.vander(s.variable_of(x), s.degree)) @ np.abs(s.coef)


def _check(got, want, tol, what):
    err = np.abs(np.asarray(got) - np.asarray(want))
    i = int(np.argmax(err / tol))
    assert err[i] <= tol[i], f"{what}: worst at index {i}: {got[i]!r} vs {want[i]!r} (tol {tol[i]:.3g})"


@pytest.mark.parametrize("name,variable", KINDS)
def test_arithmetic_matches_numpy_polynomial_and_pointwise_values(name, variable):
    interval = (-2.5, 1.5)
    b, p, q, (P, Q) = _pair(name, variable, interval)
    x = np.linspace(*interval, 97)
    n = p.degree + q.degree + 2
    absp = SlafPolynomial(name, tuple(np.abs(p.coef)), interval, variable)
    absq = SlafPolynomial(name, tuple(np.abs(q.coef)), interval, variable)
    # every basis here linearises products with non-negative coefficients, so |p|*|q| bounds the terms
    prod_size = _size(b, absp * absq, x)
    sum_size = _size(b, absp + absq, x)
    cases = [("p + q", p + q, P + Q, p(x) + q(x), sum_size), ("p - q", p - q, P - Q, p(x) - q(x), sum_size),
             ("p * q", p * q, P * Q, p(x) * q(x), prod_size),
             ("2.5 * p", 2.5 * p, 2.5 * P, 2.5 * p(x), 2.5 * _size(b, p, x)),
             ("p + 3", p + 3, P + 3, p(x) + 3, _size(b, p, x) + 3), ("3 - p", 3 - p, 3 - P, 3 - p(x),
                                                                     _size(b, p, x) + 3),
             ("p / 4", p / 4, P / 4, p(x) / 4, _size(b, p, x) / 4), ("-p", -p, -P, -p(x), _size(b, p, x)),
             ("q ** 3", q**3, Q**3, q(x) ** 3, _size(b, absq * absq * absq, x))]
    for what, got, ref, values, size in cases:
        assert isinstance(got, SlafPolynomial) and (got.basis, got.interval, got.variable) == (
            name, interval, variable), what
        np.testing.assert_allclose(got.coef, ref.coef, rtol=0, atol=8 * n * EPS * np.max(np.abs(ref.coef)),
                                   err_msg=what)
        _check(got(x), values, 16 * n * EPS * size + np.finfo(float).tiny, f"{name}/{variable} {what}")


@pytest.mark.parametrize("name,variable", KINDS)
def test_deriv_integ_match_numpy_polynomial(name, variable):
    interval = (-1.0, 3.0)
    b, p, _, (P, _) = _pair(name, variable, interval)
    x = np.linspace(*interval, 61)
    lbnd = 0.7
    got, ref = p.integ(2, k=[1.5, -2.0], lbnd=lbnd), P.integ(2, [1.5, -2.0], lbnd)
    size = _size(b, SlafPolynomial(name, tuple(np.abs(got.coef)), interval, variable), x)
    _check(got(x), ref(x), 64 * (got.degree + 1) * EPS * size, f"{name}/{variable} integ")
    # the constants are the values at lbnd; the derivative undoes the integral
    one = p.integ(1, k=[1.5], lbnd=lbnd)
    assert abs(one(np.array([lbnd]))[0] - 1.5) <= 64 * EPS * _size(b, one, np.array([lbnd]))[0]
    back = one.deriv()
    _check(back(x), p(x), 256 * (p.degree + 1) * EPS * _size(b, p, x) * (1 + abs(interval[1])),
           f"{name}/{variable} deriv(integ)")
    _check(p.deriv(3)(x), P.deriv(3)(x), 1e4 * EPS * _size(b, p, x), f"{name}/{variable} deriv(3)")


@pytest.mark.parametrize("name,variable", KINDS)
def test_roots_of_a_polynomial_built_from_its_roots(name, variable):
    interval = (-2.0, 2.0)
    x = SlafPolynomial("power", (0.0, 1.0), interval, "raw").convert(name, variable)
    roots = np.array([-1.7, -0.4, 0.25, 1.9])
    p = 0.5 * (x * x + 1.0)  # roots +-i, off the axis
    for r in roots:
        p = p * (x - r)
    got = p.real_roots()
    assert got.shape == roots.shape, (got, roots)
    np.testing.assert_allclose(got, roots, rtol=0, atol=1e-12)
    z = np.sort_complex(p.roots())
    np.testing.assert_allclose(z, np.sort_complex(np.r_[roots, 1j, -1j]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(z, np.sort_complex(p.to_numpy().roots()), rtol=0, atol=1e-13)
    assert SlafPolynomial(name, (2.0,), interval, variable).roots().size == 0


def test_equality_copy_and_mismatches():
    p = SlafPolynomial("chebyshev", (1.0, 2.0, 3.0), (-1, 2))
    c = p.copy()
    assert c == p and c is not p and hash(c) == hash(p)
    assert p != SlafPolynomial("chebyshev", (1.0, 2.0, 3.5), (-1, 2))
    assert p != SlafPolynomial("legendre", (1.0, 2.0, 3.0), (-1, 2))
    for other, match in ((SlafPolynomial("legendre", (1.0,), (-1, 2)), "different \\(basis, interval"),
                         (SlafPolynomial("chebyshev", (1.0,), (-1, 3)), "different \\(basis, interval"),
                         (SlafPolynomial("power", (1.0,), (-1, 2), "mapped").convert("power", "raw"),
                          "different \\(basis, interval")):
        with pytest.raises(ValueError, match=match):
            p + other
    with pytest.raises(TypeError, match="a SlafPolynomial and a str"):
        p * "x"
    with pytest.raises(ValueError, match="non-finite number"):
        p + float("inf")
    with pytest.raises(TypeError, match="divides by a finite non-zero number"):
        p / 0
