"""The fitting engine against results known from approximation theory."""

import dataclasses
import math
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaf_approx import norms
from slaf_approx.expr import Expression
from slaf_approx.fit import METHODS, ConditioningWarning, fit, fit_degrees
from slaf_approx.targets import get_target, load_catalogue

EPS = np.finfo(float).eps
CERT_RTOL = 1e-9  # the Remez stopping rule: (E - h) <= 1e-9 E, or resolution-limited


def _minimax(name, n, interval=(-1.0, 1.0), basis="chebyshev"):
    return fit(name, n, "minimax", basis, interval)


# --- golden minimax values -------------------------------------------------------------------------

def test_e1_relu_is_a_quarter():
    # ReLU = (x + |x|)/2 and E_1(|x|) = 1/2 on [-1, 1] (best line: the constant 1/2), so E_1(ReLU) = 1/4.
    r = _minimax("relu", 1)
    assert r.levelled_error <= 0.25 <= r.max_error
    assert r.max_error - 0.25 <= 4 * EPS, r


def test_e2_abs_is_an_eighth():
    # p = x^2 + 1/8 leaves |x| - p alternating at 0, +-1/2, +-1 with size 1/8 (Chebyshev's theorem).
    r = _minimax("abs", 2)
    assert abs(r.max_error - 0.125) <= 4 * EPS and abs(r.levelled_error - 0.125) <= 4 * EPS, r
    np.testing.assert_allclose(r.polynomial().convert("power").coef, [0.125, 0, 1], atol=8 * EPS)


@pytest.mark.parametrize("n", range(1, 13))
def test_relu_is_half_abs(n):
    # E_n(ReLU) = E_n(|x|)/2: ReLU - x/2 = |x|/2 and x is in every P_n, n >= 1.
    r, a = _minimax("relu", n), _minimax("abs", n)
    assert abs(r.max_error - a.max_error / 2) <= 1e-12 * a.max_error, (r.max_error, a.max_error)


@pytest.mark.parametrize("a", [0.5, 3.0, 10.0])
def test_relu_error_scales_with_the_interval(a):
    # ReLU(a t) = a ReLU(t): on [-a, a] every best error is a times the one on [-1, 1].
    for n in (2, 5, 8):
        e1, ea = _minimax("relu", n).max_error, _minimax("relu", n, (-a, a)).max_error
        assert abs(ea - a * e1) <= 1e-12 * ea, (n, a, ea, a * e1)


def test_bernstein_constant_approached():
    # Varga & Carpenter (1985), Table 1: 2n E_2n(|x|) at n = 10 is 0.27973..., increasing toward
    # Bernstein's constant 0.2801694990... (and E_{2n+1} = E_2n since |x| is even).
    vals = [2 * m * _minimax("abs", 2 * m).max_error for m in (1, 2, 4, 6, 8, 10)]
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False)), vals
    assert abs(vals[-1] - 0.27973) < 5e-6 and vals[-1] < 0.2801694990, vals
    assert abs(_minimax("abs", 21).max_error - _minimax("abs", 20).max_error) <= 1e-12


# --- the Remez certificate --------------------------------------------------------------------------

CATALOGUE = sorted(load_catalogue())


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_an_exact_fit_is_resolution_limited(n):
    # hardsigmoid = clamp(x/6 + 1/2, 0, 1) is the line x/6 + 1/2 on [-3, 3]: E_n = 0 for n >= 1, so the
    # measured error is rounding and the record must say so, whichever exit of the exchange it took.
    r = fit("hardsigmoid", n, "minimax", "chebyshev", (-3.0, 3.0))
    assert r.converged and "resolution-limited" in r.note, r
    assert r.max_error <= 4 * (n + 2) * EPS, r


@pytest.mark.parametrize("name", CATALOGUE)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 6, 11, 20])
def test_minimax_certificate(name, n):
    """h <= E_n <= E (de la Vallee Poussin) with E - h <= 1e-9 E, or at float64 resolution."""
    r = fit(name, n, "minimax", "chebyshev", (-3.0, 3.0))
    assert r.converged, r.note
    assert r.levelled_error <= r.max_error * (1 + 4 * EPS), (r.levelled_error, r.max_error)
    if "resolution-limited" not in r.note:
        assert r.max_error - r.levelled_error <= CERT_RTOL * r.max_error * (1 + 1e-6), r
    else:  # the gap is rounding noise: a few ulps of the function's scale times the degree
        scale = np.max(np.abs(get_target(name)(np.linspace(-3, 3, 101))))
        assert r.max_error - r.levelled_error <= 8 * (n + 2) * EPS * scale, r
    lsq = fit(name, n, "lstsq", "chebyshev", (-3.0, 3.0))
    assert r.max_error <= lsq.max_error * (1 + 1e-9) + 8 * (n + 2) * EPS, (r.max_error, lsq.max_error)


def test_minimax_is_basis_independent():
    e = [fit("gelu", 7, "minimax", b, (-3, 3)).max_error for b in ("chebyshev", "legendre", "power")]
    assert max(e) - min(e) <= 1e-12 * max(e), e


# --- least squares ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "elu"])
def test_lstsq_is_the_legendre_projection(name):
    """Continuous L2 on [lo, hi] = Legendre series with c_k = (2k+1)/2 int_{-1}^{1} f P_k dt."""
    lo, hi, n = -3.0, 3.0, 9
    tg = get_target(name)
    with mp.workdps(30):  # the integrals in mpmath, split at the kinks: a reference independent of ours
        pts = [-1, *[mp.mpf(2 * k - lo - hi) / (hi - lo) for k in tg.kinks], 1]
        f = lambda t: tg.mp((hi - lo) / 2 * t + mp.mpf(lo + hi) / 2)  # noqa: E731
        ref = [float((2 * k + 1) / mp.mpf(2) * mp.quad(lambda t, k=k: f(t) * mp.legendre(k, t), pts))
               for k in range(n + 1)]
    r = fit(name, n, "lstsq", "legendre", (lo, hi))
    np.testing.assert_allclose(r.coefficients, ref, rtol=0, atol=1e-12)
    r_cheb = fit(name, n, "lstsq", "chebyshev", (lo, hi))
    x = np.linspace(lo, hi, 201)
    np.testing.assert_allclose(r_cheb.polynomial()(x), r.polynomial()(x), rtol=0, atol=1e-12)


def test_discrete_lstsq_matches_numpy():
    x = np.random.default_rng(1).uniform(-3, 3, 400)
    tg = get_target("gelu")
    r = fit("gelu", 12, "lstsq", "chebyshev", (-3, 3), points=x)
    ref = np.polynomial.Chebyshev.fit(x, tg(x), 12, domain=[-3, 3])
    np.testing.assert_allclose(r.coefficients, ref.coef, rtol=0, atol=1e-12)


def test_weighted_lstsq_minimises_the_weighted_norm():
    """Normal(0, 1) weight: no perturbation of the coefficients lowers sum w (f - p)^2."""
    r = fit("relu", 6, "lstsq", "chebyshev", (-3, 3), weight="normal:1")
    u = fit("relu", 6, "lstsq", "chebyshev", (-3, 3))
    x, w = norms.quadrature_for(-3, 3, (0.0,), 6)
    w = w * np.exp(-x**2 / 2)
    tg = get_target("relu")

    def werr(c):
        p = r.polynomial().__class__("chebyshev", tuple(c), (-3, 3))
        return float(np.dot(w, (tg(x) - p(x)) ** 2))

    base = werr(r.coefficients)
    rng = np.random.default_rng(2)
    for _ in range(20):
        assert werr(np.array(r.coefficients) + 1e-4 * rng.standard_normal(7)) > base
    assert werr(u.coefficients) > base  # the uniform fit is worse in the weighted norm
    assert r.rms_error >= u.rms_error  # ... and the weighted fit is worse in the uniform one


def _poly_catalogue(tmp_path, coef):
    text = " + ".join(f"({c!r})*x**{i}" for i, c in enumerate(coef))
    entry = f'title = "poly"\nformula = "{text}"\nentire = true\n'  # Lipschitz constant estimated
    (tmp_path / "poly.toml").write_text(entry)
    return load_catalogue(tmp_path)["poly"]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=1, max_size=9), st.integers(0, 3))
def test_polynomials_are_fitted_exactly(tmp_path_factory, coef, extra):
    """A polynomial of degree <= n is its own best approximation, by every method's definition."""
    tg = _poly_catalogue(tmp_path_factory.mktemp("cat"), coef)
    n = len(coef) - 1 + extra
    scale = sum(abs(c) * 2.0**i for i, c in enumerate(coef)) + 1.0
    for method in ("lstsq", "minimax"):
        r = fit(tg, n, method, "chebyshev", (-2.0, 2.0))
        assert r.max_error <= 64 * (n + 1) * EPS * scale, (method, r.max_error, r.note)
        p = r.polynomial().convert("power", "raw").coef
        np.testing.assert_allclose(p[: len(coef)], coef, atol=64 * (n + 1) * EPS * scale)


# --- error norms, exactly ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,n", [("relu", 7), ("tanh", 10), ("gelu", 5), ("hardswish", 4)])
def test_max_error_is_the_supremum(name, n):
    """Not below a 2-million-point brute force, and not above it by more than its grid's resolution."""
    r = fit(name, n, "lstsq", "chebyshev", (-4.0, 4.0))
    x = np.linspace(-4.0, 4.0, 2_000_001)
    brute = np.max(np.abs(get_target(name)(x) - r.polynomial()(x)))
    assert brute <= r.max_error * (1 + 1e-12), (brute, r.max_error)
    # at a smooth maximum a grid of spacing h misses at most |e''| h^2 / 8; e'' <= (n^2 / a)^2 * E
    h = 8.0 / 2e6
    assert r.max_error - brute <= (n**2 / 4.0) ** 2 * r.max_error * h**2 / 8 + 4 * EPS, (brute, r.max_error)


@pytest.mark.parametrize("name,n", [("relu", 6), ("tanh", 9), ("swish", 12)])
def test_rms_error_against_mpmath(name, n):
    r = fit(name, n, "lstsq", "legendre", (-3.0, 3.0))
    tg, p = get_target(name), r.polynomial().convert("power", "raw")
    with mp.workdps(30):
        e2 = lambda x: (tg.mp(x) - mp.polyval(list(reversed([mp.mpf(c) for c in p.coef])), x)) ** 2  # noqa: E731
        ref = mp.sqrt(mp.quad(e2, [-3, *tg.kinks, 3]) / 6)
    # p's coefficients are rounded to float64 once: the conversion perturbs p by ~ eps * sum|c_i| 3^i
    tol = 1e-12 * float(ref) + EPS * float(sum(abs(c) * 3.0**i for i, c in enumerate(p.coef)))
    assert abs(r.rms_error - float(ref)) <= tol, (r.rms_error, float(ref))


# --- gradient fits ------------------------------------------------------------------------------------

def test_gradient_is_deterministic_and_batched_like_single():
    a = fit("gelu", 8, "gradient", "chebyshev", steps=300)
    b = fit("gelu", 8, "gradient", "chebyshev", steps=300)
    assert a.coefficients == b.coefficients and a.history == b.history
    many = fit_degrees("gelu", [3, 8, 12], "gradient", "chebyshev", steps=300)
    np.testing.assert_allclose(many[1].coefficients, a.coefficients, rtol=0, atol=1e-12)


def test_gradient_orthogonal_basis_reaches_the_optimum_power_basis_stalls():
    cheb = fit("gelu", 12, "gradient", "chebyshev", (-3, 3))
    power = fit("gelu", 12, "gradient", "power", (-3, 3))
    assert cheb.gap < 1e-6, cheb.gap  # relative excess of the training loss over the lstsq optimum
    assert power.gap > 1.0, power.gap  # the raw power basis on [-3, 3] stalls far from it
    assert len(cheb.history) > 10 and cheb.history[-1] < cheb.history[0]


def test_lbfgs_option():
    r = fit("tanh", 6, "gradient", "legendre", optimizer="lbfgs", steps=200)
    assert r.gap < 1e-8, r.gap


# --- conditioning and bad input ---------------------------------------------------------------------

def test_ill_conditioned_power_fit_warns_with_the_condition_number():
    with pytest.warns(ConditioningWarning, match=r"condition number \d"):
        fit("gelu", 30, "lstsq", "power", (-3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConditioningWarning)
        fit("gelu", 30, "lstsq", "chebyshev", (-3, 3))


@pytest.mark.parametrize("kwargs,match", [
    (dict(target="nope"), "unknown target 'nope'"),
    (dict(basis="fourier"), "unknown basis 'fourier'"),
    (dict(method="newton"), "unknown method 'newton'; allowed: " + ", ".join(METHODS)),
    (dict(degree=-1), "degree must be an integer"),
    (dict(degree=65), "degree must be an integer"),
    (dict(degree=2.5), "degree must be an integer"),
    (dict(interval=(3, -3)), "interval needs lo < hi"),
    (dict(interval=(0, math.nan)), "interval ends must be finite"),
    (dict(weight="cauchy"), "unknown weight 'cauchy'"),
    (dict(method="gradient", optimizer="sgd"), "unknown optimizer 'sgd'"),
    (dict(basis="chebyshev", variable="raw"), "raw variable is for the power basis only"),
])
def test_bad_input(kwargs, match):
    args = dict(target="relu", degree=3, method="lstsq", basis="chebyshev", interval=(-3, 3)) | kwargs
    with pytest.raises(ValueError, match=match):
        fit(args.pop("target"), args.pop("degree"), args.pop("method"), args.pop("basis"),
            args.pop("interval"), **args)


def test_target_not_finite_on_the_interval():
    # The catalogue refuses such a formula (tests/test_targets.py); build the Target around its check.
    relu = get_target("relu")
    entry = dataclasses.replace(relu._entry, name="recip", expression=Expression("1/(x - 0.5)"))
    tg = dataclasses.replace(relu, name="recip", formula="1/(x - 0.5)", kinks=(0.5,), _entry=entry)
    with pytest.raises(ValueError, match=r"target 'recip' is not finite on \[-1.0, 1.0\]"):
        fit(tg, 3, "lstsq", "chebyshev", (-1.0, 1.0), points=np.linspace(-1, 1, 5))
