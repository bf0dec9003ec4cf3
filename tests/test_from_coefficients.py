"""SLAF.from_coefficients: a shipped coefficient set in the layer evaluates as the stored polynomial."""

import numpy as np
import pytest
import torch

from slaf_approx import coefstore
from slaf_approx.nn import SLAF

EPS = np.finfo(np.float64).eps
POLYNOMIAL = [e["name"] for e in coefstore.load(reevaluate=False) if e["kind"] == "polynomial"]


@pytest.mark.parametrize("name", POLYNOMIAL)
def test_from_coefficients_matches_the_stored_polynomial(name):
    e = coefstore.entry(name)
    act = SLAF.from_coefficients(name, backend="reference", dtype=torch.float64)
    assert (act.basis, act.variable, act.interval, act.degree) == (e["basis"], e["variable"],
                                                                   tuple(e["interval"]), e["degree"])
    lo, hi = e["interval"]
    x = np.random.default_rng(0).uniform(lo, hi, 4096)
    with torch.no_grad():
        got = act(torch.from_numpy(x)).numpy()
    want = coefstore.function(e)(x)
    # Horner-type evaluation error: a few (degree + 1) eps times the sum of |a_i phi_i(x)| (the terms' scale)
    p = act.polynomial()
    terms = np.abs(np.asarray(p.coef)) @ np.abs(np.vander(x if e["variable"] == "raw" else
                                                          (2 * x - lo - hi) / (hi - lo), len(p.coef),
                                                          increasing=True)).T
    tol = 4 * (e["degree"] + 1) * EPS * terms
    bad = np.abs(got - want) > tol
    assert not bad.any(), f"worst at x = {x[bad][:5]}: {got[bad][:5]} vs {want[bad][:5]} (tol {tol[bad][:5]})"


def test_from_coefficients_refuses_a_rational_set_and_unknown_names():
    with pytest.raises(ValueError, match="is rational"):
        SLAF.from_coefficients("gelu_rational-minimax_5_4_standard")
    with pytest.raises(ValueError, match="no coefficient set named 'gelu'; known: "):
        SLAF.from_coefficients("gelu")
    with pytest.raises(TypeError, match="named by a string"):
        SLAF.from_coefficients(9)
