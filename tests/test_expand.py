"""expand: a Linear/SLAF network as an explicit polynomial, checked against the network itself."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from slaf_approx import cli
from slaf_approx import expand as ex
from slaf_approx.expand import MultiPoly, expand, expansion_size, random_network
from slaf_approx.nn import SLAF

# Tolerance. Both sides round the same polynomial in float64: the network by Clenshaw/Horner recurrences
# of at most 4 terms per SLAF and dot products of at most 4 terms per Linear, the expansion by basis
# conversion, products of polynomials and a sum of at most C(3 + 27, 3) = 4060 monomials. Each error is a
# modest multiple (< ~1e3 here) of eps = 1.1e-16 times the size of what is summed, which for the monomial
# sum is S(x) = sum |c_a x**a| (>= |out|; larger exactly where the terms cancel). Measured against
# max(|out|, S) the worst case below is ~3e-15; 1e-10 leaves margin for cancellation inside the coefficient
# arithmetic that S does not see, while a wrong index, a dropped term or a wrong conversion is an error
# of 1e-3..1 (test_the_check_resolves_small_errors shows it catches 1e-8).
RTOL = 1e-10


def _inputs(n, batch=64, seed=1):
    """Seeded points with |x_i| in [0.25, 1.5] and random signs: never zero, inside and beyond [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.25, 1.5, (batch, n)) * rng.choice([-1.0, 1.0], (batch, n))


def _evaluate(poly, X):
    """sum_a c_a x**a straight from the terms map, and sum_a |c_a x**a| (independent of MultiPoly)."""
    val, mag = np.zeros(len(X)), np.zeros(len(X))
    for e, c in poly.terms.items():
        m = c * np.prod(X ** np.array(e, dtype=float), axis=1)
        val += m
        mag += np.abs(m)
    return val, mag


def _network_values(model, X):
    with torch.no_grad():
        return model.double()(torch.from_numpy(X)).numpy()


def _worst(model, polys, X):
    want = _network_values(model, X)
    assert want.shape[1] == len(polys)
    worst = 0.0
    for j, p in enumerate(polys):
        got, mag = _evaluate(p, X)
        worst = max(worst, float(np.max(np.abs(got - want[:, j]) / np.maximum(np.abs(want[:, j]), mag))))
    return worst


def _slaf(degree, basis, width, shared, variable, g, interval=(-2.0, 3.0)):
    act = SLAF(degree, basis, interval, channels=None if shared else width, variable=variable,
               backend="reference", dtype=torch.float64)
    with torch.no_grad():
        k = torch.arange(degree + 1, dtype=torch.float64)
        c = torch.randn(act.coefficients.shape, generator=g, dtype=torch.float64)
        act.coefficients.copy_(c / (k + 1))
    return act


def _network(n, widths, degree, basis, shared, variable, seed, outputs=2):
    """Linear(n -> w1), SLAF, ..., Linear(-> outputs), with seeded weights; len(widths) SLAF layers."""
    g = torch.Generator().manual_seed(seed)
    sizes, layers = [n, *widths, outputs], []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
        layers.append(lin)
        if i < len(widths):
            layers.append(_slaf(degree, basis, sizes[i + 1], shared, variable, g))
    return nn.Sequential(*layers)


# depth (SLAF layers) 1-3, widths 1-4, degrees 1-3, power (raw and mapped), Chebyshev, Legendre, Hermite,
# shared and per-channel coefficients
CASES = [
    (1, [1], 1, "power", True, "raw"), (1, [4], 3, "power", False, "raw"),
    (2, [3], 2, "power", False, "mapped"),
    (3, [2, 3], 2, "power", True, "raw"), (2, [4, 4], 3, "power", False, "mapped"),
    (1, [3], 3, "chebyshev", True, "mapped"), (2, [2, 1], 3, "chebyshev", False, "mapped"),
    (3, [4, 2, 3], 2, "chebyshev", False, "mapped"), (2, [2, 2, 2], 3, "chebyshev", True, "mapped"),
    (2, [3], 2, "legendre", False, "mapped"), (3, [1, 4], 3, "legendre", True, "mapped"),
    (2, [3, 2, 2], 3, "legendre", False, "mapped"), (2, [2, 3], 2, "hermite", False, "mapped"),
]


@pytest.mark.parametrize("n,widths,degree,basis,shared,variable", CASES)
def test_the_polynomial_is_the_network(n, widths, degree, basis, shared, variable):
    model = _network(n, widths, degree, basis, shared, variable, seed=len(CASES) * n + degree)
    polys = expand(model)
    X = _inputs(n)
    assert _worst(model, polys, X) <= RTOL
    D = degree ** len(widths)
    for p in polys:
        assert p.n_vars == n and p.degree == D  # generic random coefficients: no leading cancellation
        assert p.bound == math.comb(n + D, D) and len(p) <= p.bound
        assert np.allclose(p(X), _evaluate(p, X)[0], rtol=1e-13, atol=1e-13 * np.max(p.scale(X)))
        np.testing.assert_allclose(p.scale(X), _evaluate(p, X)[1], rtol=1e-13)


def test_the_check_resolves_small_errors():
    model = _network(2, [3, 2], 3, "chebyshev", False, "mapped", seed=5)
    (p, q) = expand(model)
    X = _inputs(2)
    assert _worst(model, [p, q], X) < 1e-13  # measured: ~1e-15
    nudge = 1e-8 * float(np.max(_evaluate(p, X)[1]))
    bad = MultiPoly(2, {**p.terms, (0, 0): p.terms[(0, 0)] + nudge})
    assert _worst(model, [bad, q], X) > 100 * RTOL


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), widths=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       degree=st.integers(0, 3), basis=st.sampled_from(["power", "chebyshev", "legendre"]),
       shared=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_random_networks(n, widths, degree, basis, shared, seed):
    model = _network(n, widths, degree, basis, shared, None, seed)
    polys = expand(model)
    assert _worst(model, polys, _inputs(n, seed=seed)) <= RTOL
    assert all(p.degree == degree ** len(widths) for p in polys)  # 0 ** L = 0: a constant network


@pytest.mark.parametrize("degree,depth", [(1, 1), (2, 1), (3, 2), (2, 3)])
def test_one_input_gives_every_power(degree, depth):
    (p,) = expand(_network(1, [3] * depth, degree, "chebyshev", False, None, seed=degree, outputs=1))
    D = degree ** depth
    assert p.degree == D and len(p) == D + 1 == p.bound
    assert sorted(p.terms) == [(k,) for k in range(D + 1)]


def test_two_inputs_fill_the_bound():
    (p,) = expand(_network(2, [3, 3], 2, "legendre", False, None, seed=3, outputs=1))
    assert p.degree == 4 and len(p) == p.bound == math.comb(2 + 4, 4) == 15


def test_closed_forms():
    # y = x**2 after 2x + 1: (2x + 1)**2 = 4x**2 + 4x + 1, exactly
    lin = nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(2.0)
        lin.bias.fill_(1.0)
    square = SLAF(2, "power", init=[0.0, 0.0, 1.0], backend="reference")
    (p,) = expand(nn.Sequential(lin, square))
    assert p.terms == {(2,): 4.0, (1,): 4.0, (0,): 1.0}
    assert p.degree == 2 and len(p) == 3 == p.bound
    # (x1 - x2)**2 = x1**2 - 2 x1 x2 + x2**2; T_2(t) = 2t**2 - 1 on [-1, 1]: 2(x1 - x2)**2 - 1
    diff = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        diff.weight.copy_(torch.tensor([[1.0, -1.0]]))
    (p,) = expand(nn.Sequential(diff, square))
    assert p.terms == {(2, 0): 1.0, (1, 1): -2.0, (0, 2): 1.0}
    t2 = SLAF(2, "chebyshev", (-1.0, 1.0), init=[0.0, 0.0, 1.0], backend="reference")
    (p,) = expand(nn.Sequential(diff, t2))
    assert p.terms == {(0, 0): -1.0, (2, 0): 2.0, (1, 1): -4.0, (0, 2): 2.0}


def test_layers_only_linear_identity_nested_and_single():
    g = torch.Generator().manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(2, 2)
    act = _slaf(2, "chebyshev", 2, False, None, g)
    flat = expand(nn.Sequential(a, act, b))
    nested = expand(nn.Sequential(nn.Sequential(a, nn.Identity()), nn.Sequential(nn.Sequential(act), b)))
    assert [p.terms for p in flat] == [p.terms for p in nested]
    (p, q) = expand(a)  # a single layer: affine, degree 1
    assert p.degree == 1 and len(p) == 4
    W, c = a.weight.detach().double().numpy(), a.bias.detach().double().numpy()
    assert p.terms == {(0, 0, 0): c[0], (1, 0, 0): W[0, 0], (0, 1, 0): W[0, 1], (0, 0, 1): W[0, 2]}
    # no Linear: the SLAF applied to each input (shared coefficients need n_inputs)
    polys = expand(nn.Sequential(_slaf(3, "legendre", 2, True, None, g)), n_inputs=2)
    assert [sorted(p.terms) for p in polys] == [[(0, 0), (1, 0), (2, 0), (3, 0)],
                                               [(0, 0), (0, 1), (0, 2), (0, 3)]]


def test_model_is_left_as_it_was():
    model = random_network(2, [3], 2, "chebyshev", seed=0).float()
    expand(model)
    assert all(t.dtype == torch.float32 for t in model.parameters())


def test_monomial_order_is_graded_and_complete():
    for n in range(1, 5):
        for D in range(0, 6):
            mono = ex._Monomials(n, D)
            E = mono.exponents
            assert len(E) == math.comb(n + D, n) == len({tuple(e) for e in E.tolist()})
            assert (np.diff(E.sum(axis=1)) >= 0).all() and E.sum(axis=1).max() == D
            np.testing.assert_array_equal(mono.rank(np.cumsum(E, axis=1)), np.arange(len(E)))


def test_size_is_known_before_expanding():
    model = _network(3, [4, 4, 4], 3, "chebyshev", False, None, seed=0, outputs=1)
    size = expansion_size(model)
    assert (size.n_inputs, size.n_outputs, size.degree, size.terms) == (3, 1, 27, math.comb(30, 27))
    assert size.layer_degrees == (1, 3, 3, 9, 9, 27, 27)


def test_refuses_over_the_size_limit_before_starting(monkeypatch):
    def boom(*args):
        raise AssertionError("expand started before checking the size")

    monkeypatch.setattr(ex, "_Monomials", boom)
    model = _network(3, [4, 4, 4], 3, "chebyshev", False, None, seed=0, outputs=1)
    msg = r"up to 4060 terms \(3 inputs, total degree 27\) > max_terms = 1000"
    with pytest.raises(ValueError, match=msg):
        expand(model, max_terms=1000)
    big = _network(50, [8] * 4, 3, "power", True, None, seed=0, outputs=1)  # C(131, 50): ~1e37 terms
    with pytest.raises(ValueError, match=f"up to {math.comb(131, 81)} terms"):
        expand(big)


@pytest.mark.parametrize("layers,needle", [
    (lambda: [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)], "layer 1 (ReLU) is not supported; expand takes"),
    (lambda: [nn.Linear(2, 3), nn.Sequential(nn.Identity(), nn.Tanh())], "layer 1.1 (Tanh) is not supported"),
    (lambda: [nn.Linear(2, 3), SLAF(2, out_of_range="clamp", backend="reference")],
     "layer 1 (SLAF) has out_of_range='clamp'"),
    (lambda: [nn.Linear(2, 3), nn.Linear(4, 1)], "layer 1 (Linear) takes 4 features but receives 3"),
    (lambda: [nn.Linear(2, 3), SLAF(2, channels=4, backend="reference")],
     "layer 1 (SLAF) has 4 channels but receives 3"),
    (lambda: [SLAF(2, backend="reference")], "cannot infer the number of inputs"),
])
def test_bad_networks_are_named(layers, needle):
    with pytest.raises(ValueError) as info:
        expand(nn.Sequential(*layers()))
    assert needle in str(info.value)


def test_bad_arguments():
    model = nn.Sequential(nn.Linear(2, 1))
    with pytest.raises(ValueError, match="n_inputs must be a positive integer"):
        expand(model, 0)
    with pytest.raises(ValueError, match="layer 0 \\(Linear\\) takes 2 features but receives 3"):
        expand(model, 3)
    with pytest.raises(ValueError, match="max_terms must be a positive integer"):
        expand(model, max_terms=0)
    with pytest.raises(ValueError, match="expand takes a torch.nn.Module"):
        expand([nn.Linear(2, 1)])
    (p,) = expand(model)
    with pytest.raises(ValueError, match=r"X must have shape \[batch, 2\]"):
        p(np.zeros((4, 3)))


def test_multipoly_basics():
    p = MultiPoly(2, {(2, 1): 3.0, (0, 0): -1.0})
    assert p.degree == 3 and len(p) == 2 and p.bound == 10
    X = np.array([[2.0, -1.0], [0.5, 3.0]])
    np.testing.assert_array_equal(p(X), [3 * 4 * -1 - 1, 3 * 0.25 * 3 - 1])
    np.testing.assert_array_equal(p.scale(X), [13.0, 3.25])
    d = p.to_dict()
    assert d == {"n_vars": 2, "degree": 3, "monomials": 2, "bound": 10,
                 "terms": [[[2, 1], 3.0], [[0, 0], -1.0]]}
    zero = MultiPoly(3, {})
    assert zero.degree == 0 and len(zero) == 0 and np.all(zero(np.ones((2, 3))) == 0)
    assert ex.monomial_name((2, 0, 1)) == "x1^2 x3" and ex.monomial_name((0, 0)) == "1"


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_expand(capsys):
    code, out, err = _run(capsys, "expand", "--inputs", "2", "--widths", "4", "4", "--degree", "2")
    assert code == 0 and err == ""
    assert "predicted: 2 inputs, total degree 4, up to 15 terms (max_terms = 200000)" in out
    assert "total degree: 4" in out and "monomials: 15 of at most C(2 + 4, 4) = 15" in out
    line = next(s for s in out.splitlines() if s.startswith("max relative error"))
    assert float(line.split()[-1]) <= RTOL
    assert len(out.split("largest terms:")[1].strip().splitlines()) == 10


def test_cli_expand_json_is_the_expansion(capsys):
    code, out, _ = _run(capsys, "expand", "--inputs", "2", "--widths", "3", "--degree", "3", "--basis",
                        "legendre", "--seed", "7", "--json")
    assert code == 0
    d = json.loads(out)
    (p,) = expand(random_network(2, [3], 3, "legendre", seed=7))
    assert d["degree"] == 3 and d["monomials"] == len(p) == 10 and d["bound"] == 10
    assert {tuple(e): c for e, c in d["terms"]} == p.terms
    assert d["max_relative_error"] <= RTOL


@pytest.mark.parametrize("argv,needle", [
    (["--inputs", "3", "--widths", "4", "4", "4", "--degree", "3", "--max-terms", "1000"],
     "expansion would have up to 4060 terms (3 inputs, total degree 27) > max_terms = 1000"),
    (["--inputs", "0", "--widths", "2", "--degree", "2"], "argument --inputs: expected a positive integer"),
    (["--inputs", "2", "--widths", "2", "x", "--degree", "2"], "expected a positive integer, got 'x'"),
    (["--inputs", "2", "--widths", "2", "--degree", "65"], "degree must be an integer in [0, 64]"),
    (["--inputs", "2", "--widths", "2", "--degree", "2", "--basis", "nope"], "invalid choice: 'nope'"),
])
def test_cli_expand_bad_input(capsys, argv, needle):
    code, _, err = _run(capsys, "expand", *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err
