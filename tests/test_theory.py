"""Theory: Jackson's bound, Bernstein's constant, Bernstein ellipses and the curves drawn in the report."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C

from slaf_approx import theory
from slaf_approx.targets import get_target

# Bernstein's constant to 31 digits: R. S. Varga and A. J. Carpenter, "On the Bernstein conjecture in
# approximation theory", Constr. Approx. 1 (1985) 333-348.
BETA_VARGA_CARPENTER = "0.2801694990238691330364364912307"


def _stand_in(name="f", lipschitz=1.0, kinks=(), singularities=(), entire=False, params=None):
    return SimpleNamespace(name=name, lipschitz=lipschitz, kinks=tuple(kinks),
                           singularities=tuple(singularities), entire=entire, analytic=not kinks,
                           params=params or {})


# ---------------------------------------------------------------------------------------------- ellipses
def test_ellipse_rho_closed_form():
    # z = i pi/2 on [-3, 3] maps to t = i pi/6; t^2 - 1 = -(1 + (pi/6)^2), so
    # rho = |i pi/6 + i sqrt(1 + (pi/6)^2)| = pi/6 + sqrt(1 + (pi/6)^2)   (Trefethen, ATAP, ch. 8)
    expected = math.pi / 6 + math.sqrt(1 + (math.pi / 6) ** 2)
    assert theory.ellipse_rho(1j * math.pi / 2, -3.0, 3.0) == pytest.approx(expected, rel=1e-15)
    assert theory.ellipse_rho(-1j * math.pi / 2, -3.0, 3.0) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("x", [-3.0, -1.7, 0.0, 0.3, 2.999, 3.0])
def test_ellipse_rho_real_point_inside_is_one(x):
    assert theory.ellipse_rho(complex(x, 0.0), -3.0, 3.0) == pytest.approx(1.0, abs=1e-12)


def test_ellipse_rho_real_point_outside():
    # t = 2 on [-1, 1]: rho = 2 + sqrt(3) (the ellipse through 2 has semi-major axis (rho + 1/rho)/2 = 2)
    assert theory.ellipse_rho(2.0, -1.0, 1.0) == pytest.approx(2 + math.sqrt(3), rel=1e-15)
    assert theory.ellipse_rho(-2.0, -1.0, 1.0) == pytest.approx(2 + math.sqrt(3), rel=1e-15)


@pytest.mark.parametrize("rho", [1.05, 1.7, 4.0])
@pytest.mark.parametrize("theta", [0.3, 1.2, 2.5, 4.0])
def test_ellipse_rho_recovers_points_on_the_ellipse(rho, theta):
    # The Bernstein ellipse E_rho is the image of the circle |w| = rho under t = (w + 1/w)/2 (ATAP, ch. 8),
    # here mapped affinely onto the interval [lo, hi] = [-0.5, 2].
    w = rho * complex(math.cos(theta), math.sin(theta))
    t = 0.5 * (w + 1 / w)
    lo, hi = -0.5, 2.0
    z = 0.5 * (hi - lo) * t + 0.5 * (lo + hi)
    assert theory.ellipse_rho(z, lo, hi) == pytest.approx(rho, rel=1e-12)


def test_analytic_rate():
    z = 1j * math.pi / 2
    tanh_like = _stand_in(singularities=(z, 3j))
    assert theory.analytic_rate(tanh_like, -3, 3) == pytest.approx(theory.ellipse_rho(z, -3, 3), rel=1e-15)
    assert theory.analytic_rate(_stand_in(entire=True), -3, 3) == math.inf
    assert theory.analytic_rate(_stand_in(kinks=(0.0,)), -3, 3) is None


def test_analytic_rate_catalogue():
    rho = math.pi / 6 + math.sqrt(1 + (math.pi / 6) ** 2)  # tanh's poles at +-i pi/2 (DLMF 4.28), see above
    assert theory.analytic_rate(get_target("tanh"), -3, 3) == pytest.approx(rho, rel=1e-14)
    assert theory.analytic_rate(get_target("relu"), -3, 3) is None
    assert theory.analytic_rate(get_target("gelu"), -3, 3) == math.inf


def test_analytic_rate_predicts_chebyshev_convergence():
    # Chebyshev interpolants of an analytic f converge like rho^(-n) (ATAP Thm 8.2): the measured rate for
    # tanh on [-3, 3] (odd degrees, since tanh is odd) must match analytic_rate within 2%.
    rho = theory.analytic_rate(get_target("tanh"), -3.0, 3.0)
    t = np.linspace(-1, 1, 20001)
    f = lambda s: np.tanh(3 * s)  # noqa: E731
    ns = np.arange(11, 40, 2)
    errs = [np.abs(f(t) - C.chebval(t, C.chebinterpolate(f, n))).max() for n in ns]
    observed = math.exp(-np.polyfit(ns, np.log(errs), 1)[0])
    assert observed == pytest.approx(rho, rel=0.02)


# ---------------------------------------------------------------------------------------------- Jackson
def test_jackson_bound_value_and_scaling():
    # Jackson (Cheney 1966, ch. 4 sec. 6): E_n(f) <= pi L / (2 (n + 1)) on [-1, 1]
    assert theory.jackson_bound(1.0, -1.0, 1.0, 0) == pytest.approx(math.pi / 2, rel=1e-15)
    n = np.arange(0, 30)
    b = theory.jackson_bound(1.0, -1.0, 1.0, n)
    assert np.allclose(b * (n + 1), math.pi / 2, rtol=1e-15, atol=0)  # ~ 1/(n+1)
    assert np.allclose(theory.jackson_bound(1.0, -3.0, 3.0, n), 3 * b, rtol=1e-15, atol=0)  # ~ (hi - lo)
    assert np.allclose(theory.jackson_bound(1.0, 5.0, 11.0, n), 3 * b, rtol=1e-15, atol=0)  # not on lo, hi
    assert np.allclose(theory.jackson_bound(2.5, -1.0, 1.0, n), 2.5 * b, rtol=1e-15, atol=0)  # ~ L
    assert isinstance(theory.jackson_bound(1.0, -1.0, 1.0, 3), float)


def _equioscillation(f, p, points, n):
    """Max error of p on [-1, 1] and whether the error alternates in sign with equal size at >= n+2 points."""
    x = np.linspace(-1, 1, 200001)
    emax = np.abs(f(x) - p(x)).max()
    e = f(points) - p(points)
    alternates = np.all(np.sign(e[1:]) == -np.sign(e[:-1])) and np.allclose(np.abs(e), emax, rtol=1e-12)
    return emax, bool(alternates) and len(points) >= n + 2


def test_known_minimax_values_of_abs_satisfy_jackson():
    # E_1(|x|) = 1/2 (best line: 1/2) and E_2(|x|) = 1/8 (best quadratic: x^2 + 1/8) on [-1, 1]. Both are
    # certified here by Chebyshev's equioscillation theorem: n + 2 alternating extrema of equal size.
    e1, ok1 = _equioscillation(np.abs, lambda x: np.full_like(x, 0.5), np.array([-1.0, 0.0, 1.0]), 1)
    e2, ok2 = _equioscillation(np.abs, lambda x: x**2 + 0.125, np.array([-1.0, -0.5, 0.0, 0.5, 1.0]), 2)
    assert ok1 and ok2
    assert e1 == pytest.approx(0.5, abs=1e-12) and e2 == pytest.approx(0.125, abs=1e-12)
    assert e1 <= theory.jackson_bound(1.0, -1.0, 1.0, 1)
    assert e2 <= theory.jackson_bound(1.0, -1.0, 1.0, 2)
    # relu = (x + |x|)/2: the same minimax errors halved, on [-1, 1], also below Jackson's bound
    assert e1 / 2 <= theory.jackson_bound(1.0, -1.0, 1.0, 1)


# ---------------------------------------------------------------------------------------------- Bernstein
def test_bernstein_constant():
    assert theory.BERNSTEIN_BETA == float(BETA_VARGA_CARPENTER)
    assert abs(theory.BERNSTEIN_BETA - 0.28016949902386913) < 1e-17


@pytest.mark.parametrize("n", [1, 2, 7, 20, 64])
def test_bernstein_relu_and_abs(n):
    assert theory.bernstein_relu(1.0, n) * 2 * n == pytest.approx(theory.BERNSTEIN_BETA, rel=1e-15)
    assert theory.bernstein_abs(1.0, n) * n == pytest.approx(theory.BERNSTEIN_BETA, rel=1e-15)
    assert theory.bernstein_relu(3.0, n) == pytest.approx(3 * theory.bernstein_relu(1.0, n), rel=1e-15)
    assert theory.bernstein_abs(2.0, n) == pytest.approx(4 * theory.bernstein_relu(1.0, n), rel=1e-15)


def test_bernstein_at_degree_zero_is_infinite_without_warnings():
    v = theory.bernstein_relu(1.0, np.array([0, 1, 2]))
    assert v[0] == math.inf and np.all(np.isfinite(v[1:]))
    assert theory.bernstein_abs(1.0, 0) == math.inf


def test_bernstein_asymptote_is_near_known_minimax_errors():
    # E_2(|x|) = 1/8 (see above) against beta/2 = 0.140: the asymptote is already within 15% at n = 2
    assert 0.125 / theory.bernstein_abs(1.0, 2) == pytest.approx(1.0, abs=0.15)


# ---------------------------------------------------------------------------------------------- curves
def test_theory_curves_relu_symmetric():
    n = np.arange(1, 21)
    curves = theory.theory_curves(get_target("relu"), -3.0, 3.0, n)
    assert set(curves) == {"Jackson", "Bernstein β·a/(2n)"}
    assert np.allclose(curves["Bernstein β·a/(2n)"], theory.BERNSTEIN_BETA * 3 / (2 * n), rtol=1e-15)
    assert np.allclose(curves["Jackson"], theory.jackson_bound(1.0, -3.0, 3.0, n), rtol=1e-15)
    # asymmetric interval: no Bernstein asymptote
    assert set(theory.theory_curves(get_target("relu"), -1.0, 3.0, n)) == {"Jackson"}


def test_theory_curves_abs_and_leaky():
    n = np.arange(1, 5)
    curves = theory.theory_curves(get_target("abs"), -2.0, 2.0, n)
    assert np.allclose(curves["Bernstein β·a/n"], theory.BERNSTEIN_BETA * 2 / n, rtol=1e-15)
    leaky = theory.theory_curves(get_target("leaky_relu", slope=0.2), -1.0, 1.0, n)
    # leaky = ((1 + s) x + (1 - s)|x|)/2: E_n = (1 - s)/2 * E_n(|x|)
    assert np.allclose(leaky["Bernstein β·a·(1−s)/(2n)"], 0.8 * theory.BERNSTEIN_BETA / (2 * n), rtol=1e-15)


def test_theory_curves_rate_line_through_anchor():
    tg = get_target("tanh")
    n = np.arange(1, 21)
    rho = theory.analytic_rate(tg, -3.0, 3.0)
    assert theory.theory_curves(tg, -3.0, 3.0, n).keys() == {"Jackson"}  # no anchor, no rate line
    curves = theory.theory_curves(tg, -3.0, 3.0, n, anchor=(10, 1e-3))
    (name,) = [k for k in curves if k.startswith("ρ^-n")]
    assert name == f"ρ^-n (ρ={rho:.3g})"
    line = curves[name]
    assert line[9] == pytest.approx(1e-3, rel=1e-12)
    assert np.allclose(line[1:] / line[:-1], 1 / rho, rtol=1e-12)
    # entire and kinked targets: no finite rho, no rate line
    assert not any(k.startswith("ρ") for k in theory.theory_curves(get_target("gelu"), -3, 3, n, (10, 1e-3)))
    assert not any(k.startswith("ρ") for k in theory.theory_curves(get_target("relu"), -3, 3, n, (10, 1e-3)))


@pytest.mark.parametrize("bad", [-5, [3, -1], 2.5, math.nan, math.inf])
def test_theory_refuses_degrees_that_are_not_integers_ge_0(bad):
    # a report row of degree -5 once drew a negative Jackson "bound"
    for call in (lambda: theory.jackson_bound(1.0, -3, 3, bad), lambda: theory.bernstein_relu(3.0, bad),
                 lambda: theory.theory_curves(get_target("relu"), -3, 3, bad)):
        with pytest.raises(ValueError, match="degrees must be integers >= 0, got"):
            call()
    assert theory.jackson_bound(1.0, -3, 3, 10**9) > 0
