"""The problem object and method registry; fitting any callable; degree by tolerance; fit-related faults."""

import math
import sys
import warnings

import numpy as np
import pytest

from slaf_approx import cli, coefstore, norms
from slaf_approx.bases import MIN_WIDTH_ULPS, check_interval
from slaf_approx.fit import ALL_METHODS, GRADIENT_GAP, REGISTRY, ConditioningWarning, fit, register
from slaf_approx.problem import DENSE_PANELS, FitProblem, FunctionTarget, approximant, measure, measure_row
from slaf_approx.targets import get_target, load_catalogue

EPS = np.finfo(float).eps


def _dense_max(f, g, lo, hi, n=200_001):
    x = np.linspace(lo, hi, n)
    return float(np.max(np.abs(f(x) - g(x))))


# --- the problem object and the registry ----------------------------------------------------------

def test_the_registry_is_the_method_list_and_takes_a_new_method(monkeypatch):
    assert tuple(REGISTRY) == ALL_METHODS
    monkeypatch.setattr(sys.modules["slaf_approx.fit"], "REGISTRY", dict(REGISTRY))

    @register("zero")
    def _zero(problem, degrees, opts):  # one function and one registry line make a method
        return [dict(coefficients=np.zeros(d + 1)) for d in degrees]

    r = fit("tanh", 3, "zero", interval=(-2.0, 2.0))
    assert r.method == "zero" and r.coefficients == [0.0] * 4
    assert r.max_error == pytest.approx(math.tanh(2.0), rel=4 * EPS)  # sup |tanh| on [-2, 2]


@pytest.mark.parametrize("method", ["lstsq", "minimax", "gradient", "rational"])
def test_a_fit_problem_gives_the_same_fit_as_separate_arguments(method):
    opts = dict(steps=200) if method == "gradient" else {}
    p = FitProblem.make("gelu", "legendre", (-2.0, 2.5))
    a = fit(p, 6, method, **opts)
    b = fit("gelu", 6, method, "legendre", (-2.0, 2.5), **opts)
    assert a.coefficients == b.coefficients and a.max_error == b.max_error, (a, b)
    with pytest.raises(ValueError, match="a FitProblem already holds the basis"):
        fit(p, 6, method, "chebyshev", (-1.0, 1.0))


def test_each_basis_carries_its_default_variable():
    assert FitProblem.make("relu", "power").variable == "raw"
    for b in ("chebyshev", "legendre", "hermite"):
        assert FitProblem.make("relu", b).variable == "mapped"


@pytest.mark.parametrize("method", ["lstsq", "minimax", "rational-minimax"])
def test_one_measurement_reproduces_the_record(method):
    r = fit("swish", 7, method, "power" if method != "lstsq" else "legendre")
    g = approximant(r)
    assert measure_row(r.to_dict()) == (r.max_error, r.max_error_at, r.rms_error)
    # and it agrees with plain dense sampling to the sampling's own resolution
    tg = get_target("swish")
    dense = _dense_max(tg, g, r.lo, r.hi)
    assert dense <= r.max_error * (1 + 1e-12) and dense >= r.max_error * (1 - 1e-6), (dense, r.max_error)


# --- fit anything ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["lstsq", "minimax"])
def test_a_callable_fits_like_its_catalogue_twin(method):
    a = fit(np.tanh, 10, method)
    b = fit("tanh", 10, method)
    assert a.target == "tanh" and "kinks unknown: sampled on 4 adaptive panels" in a.note
    assert "kinks unknown" not in b.note
    # both integrals and both maxima are exact to rounding: only rounding separates the two fits
    np.testing.assert_allclose(a.coefficients, b.coefficients, rtol=0, atol=1e-12)
    assert abs(a.max_error - b.max_error) <= 1e-12 and abs(a.rms_error - b.rms_error) <= 1e-12


def test_a_callable_with_declared_kinks_is_sampled_at_them():
    relu = FunctionTarget(lambda x: np.maximum(x, 0.0), name="myrelu", kinks=[0.0])
    a, b = fit(relu, 8, "minimax"), fit("relu", 8, "minimax")
    assert a.target == "myrelu" and "kinks unknown" not in a.note
    assert abs(a.max_error - b.max_error) <= 1e-14, (a.max_error, b.max_error)


@pytest.mark.parametrize("degree", [4, 12])
def test_a_kinked_callable_without_kinks_is_fitted_and_measured_exactly(degree):
    f = lambda x: np.abs(x - 0.3)  # noqa: E731
    a = fit(f, degree, "lstsq", interval=(-1.0, 1.0))
    b = fit(FunctionTarget(f, kinks=[0.3]), degree, "lstsq", interval=(-1.0, 1.0))
    assert "adaptive panels; kinks found at x = 0.3" in a.note, a.note
    # the adaptive panels grade towards the kink as the declared kink's split does: the same L2 optimum
    np.testing.assert_allclose(a.coefficients, b.coefficients, rtol=0, atol=1e-13)
    assert abs(a.rms_error - b.rms_error) <= 1e-12 * b.rms_error and abs(a.max_error - b.max_error) <= 1e-14
    dense = _dense_max(f, approximant(a), -1.0, 1.0, 2_000_001)
    assert dense <= a.max_error and abs(dense - a.max_error) <= 1e-9 * a.max_error, (dense, a.max_error)


def test_a_callable_the_panels_cannot_resolve_falls_back_to_uniform_panels():
    r = fit(lambda x: np.sin(1.0 / (x + 3.0001)), 4)
    assert f"kinks unknown: sampled on {DENSE_PANELS} uniform panels" in r.note, r.note


@pytest.mark.parametrize("bad,match", [
    ("not callable", "unknown target"),
    (42, "target must be a catalogue name, a Target or a numpy-vectorised callable"),
])
def test_bad_targets(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fit(bad, 3)


def test_a_callable_takes_no_params():
    with pytest.raises(ValueError, match="takes no parameters"):
        fit(np.tanh, 3, params={"beta": 2.0})


# --- degree by tolerance --------------------------------------------------------------------------

@pytest.mark.parametrize("method,target,tol", [("minimax", "gelu", 1e-6), ("lstsq", "tanh", 1e-5),
                                               ("minimax", "relu", 3e-2)])
def test_tol_picks_the_lowest_degree_meeting_it(method, target, tol):
    r = fit(target, method=method, tol=tol)
    assert r.max_error <= tol and f"degree {r.degree} chosen by tol" in r.note
    assert fit(target, r.degree - 1, method).max_error > tol  # the degree below misses it


def test_an_unattainable_tol_names_the_best_error():
    best = fit("relu", 64, "lstsq").max_error
    with pytest.raises(ValueError, match=rf"tol 1e-08 not reached by degree 64 \(lstsq\): the best max error "
                                         rf"there is {best:.3g}"):
        fit("relu", tol=1e-8)
    with pytest.raises(ValueError, match="tol picks the degree for the lstsq and minimax"):
        fit("relu", method="gradient", tol=1e-3)
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        fit("relu", tol=-1.0)


def test_cli_tol(capsys):
    code = cli.main(["fit", "gelu", "--tol", "1e-6", "--method", "minimax", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and '"degree": 16' in out  # E_15(gelu) > 1e-6 >= E_16 (test above, bisection)
    for argv in (["fit", "relu", "--tol", "1e-12"], ["fit", "relu"]):
        assert cli.main(argv) == 2
        _, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# --- faults: degenerate intervals, overflow, near singularities, poles -----------------------------

@pytest.mark.parametrize("interval", [(1e16, 1.0000000000000002e16), (0.0, 1e-300), (1.0, 1.0 + 255 * EPS)])
def test_degenerate_intervals_are_refused(interval):
    with pytest.raises(ValueError, match="too narrow"):
        fit("relu", 3, interval=interval)


def test_the_narrowest_accepted_interval():
    lo = 1e16
    hi = lo + MIN_WIDTH_ULPS * math.ulp(lo)
    assert check_interval((lo, hi)) == (lo, hi)


def test_a_huge_parameter_gives_its_limit_not_an_overflow():
    # swish with beta = 1e308 is relu to float64 (sigmoid(beta x) = step); its singularities sit 3e-308 off
    # the axis, which used to ask for infinitely many quadrature panels
    s = fit("swish", 3, params={"beta": 1e308})
    r = fit("relu", 3)
    assert abs(s.max_error - r.max_error) <= 1e-14 and abs(s.rms_error - r.rms_error) <= 1e-14
    entry = coefstore.entry_from_record(s)
    assert coefstore.errors(entry, get_target("swish", beta=1e308)) == (s.max_error, s.rms_error)


def test_a_singularity_close_to_the_axis_costs_logarithmically_many_panels(tmp_path):
    # before: panels as short as the singularity distance, 6e9 of them on [-3, 3] (44.7 GiB)
    for sing in ([1e-9j], [0.1234 + 1e-300j]):
        x, w = norms.quadrature_for(-3.0, 3.0, (), 5, sing)
        assert len(x) < 20_000 and abs(w.sum() - 6.0) <= 64 * EPS
    x, _ = norms.quadrature_for(-3.0, 3.0, (), 5, 1e-9)  # a bare distance: capped uniform panels
    assert len(x) <= norms.MAX_PANELS * 74
    (tmp_path / "spike.toml").write_text('title = "spike"\nformula = "1/(1 + ((x - 0.1234)/1e-9)**2)"\n'
                                         'lipschitz = 1e9\nsingularities = ["0.1234 + 1e-9j"]\n')
    r = fit(load_catalogue(tmp_path)["spike"], 5)
    # the peak (height 1, width 1e-9) is found, though no grid of the old kind would have seen it
    assert r.max_error > 0.99 and abs(r.max_error_at - 0.1234) < 1e-8, r


def test_a_target_with_a_pole_inside_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"not finite on \[-3.0, 3.0\]: it grows without bound near x = 0.5"):
        fit(lambda x: 1.0 / (x - 0.5), 3)
    (tmp_path / "pole.toml").write_text('title = "pole"\nformula = "1/(x - 0.5)"\nlipschitz = 1\n'
                                        'singularities = ["0.5 + 100j"]\n')
    # declared with a far singularity, it is refused when the catalogue loads (targets verifies declarations)
    with pytest.raises(ValueError, match=r"pole.toml: field 'singularities': .* analytic at '0.5 \+ 100j'"):
        load_catalogue(tmp_path)


def test_bounded_narrow_peaks_are_not_poles():
    f = lambda x: 1.0 / (1.0 + ((x - 0.1234) / 1e-7) ** 2)  # noqa: E731
    norms.check_bounded(f, np.array([-3.0, 3.0]), "peak")  # no error
    with pytest.raises(ValueError, match="grows without bound"):
        norms.check_bounded(lambda x: 1.0 / (x - 0.1234) ** 2, np.array([-3.0, 3.0]), "pole")


# --- faults: convergence claims --------------------------------------------------------------------

def test_minimax_in_an_ill_conditioned_basis_is_not_certified():
    with pytest.warns(ConditioningWarning, match="power basis \\(raw\\) at degree 64"):
        r = fit("relu", 64, "minimax", "power")
    assert not r.converged and "certificate fails in the power basis (raw)" in r.note
    assert r.max_error > 10 * r.levelled_error
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConditioningWarning)
        c = fit("relu", 64, "minimax", "chebyshev")
    assert c.converged and c.max_error - c.levelled_error <= 1e-9 * c.max_error


def test_gradient_converged_means_near_the_lstsq_optimum():
    bad = fit("tanh", 10, "gradient", "power", (-5.0, 2.5))
    assert not bad.converged and bad.gap > GRADIENT_GAP and "not converged" in bad.note, bad
    good = fit("tanh", 6, "gradient", "legendre", optimizer="lbfgs", steps=200)
    assert good.converged and good.gap <= GRADIENT_GAP and good.note == "", good


def test_problem_measure_of_a_polynomial_with_nan_is_infinite():
    p = FitProblem.make("gelu")
    g = p.polynomial([1.0, math.nan])
    assert measure(p, g)[0] == math.inf


def test_no_fitting_module_dispatches_on_a_basis_name():
    # a Basis carries its variables and affine map; comparing names elsewhere is how the copies diverged
    import re
    from pathlib import Path

    import slaf_approx

    pattern = re.compile(r'(==|!=|\bin)\s*\(?"(power|chebyshev|legendre|hermite|raw|mapped)"')
    root = Path(slaf_approx.__file__).parent
    found = [f"{name}:{i}: {line.strip()}"
             for name in ("fit", "problem", "rational", "ratfun", "norms", "remez", "coefstore", "theory")
             for i, line in enumerate((root / f"{name}.py").read_text().splitlines(), 1)
             if pattern.search(line)]
    assert not found, "\n".join(found)
