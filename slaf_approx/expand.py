"""A network of Linear and SLAF layers as the explicit multivariate polynomial it is.

    polys = expand(nn.Sequential(nn.Linear(2, 4), SLAF(2), nn.Linear(4, 1)))
    p = polys[0]                 # MultiPoly: one per network output
    p.terms                      # {(2, 0): 0.31, (1, 1): -1.2, ..., (0, 0): 0.05}: exponents -> coefficient
    p.degree, len(p), p.bound    # total degree d**L, number of monomials, C(n + D, D)
    p(X)                         # evaluate at X [batch, n] in float64

A Linear layer maps polynomials to affine combinations of them; an SLAF (out_of_range="extrapolate")
with monomial coefficients a_0..a_d (any basis, converted by `SlafPolynomial.convert("power", "raw")`)
maps q to a_0 + q (a_1 + q (a_2 + ...)), Horner in polynomial arithmetic. L SLAF layers of degree d
give total degree D = d**L, and in n inputs at most C(n + D, D) monomials: the size is known before
any arithmetic, and `expand` refuses (ValueError) when it is over `max_terms`.

Representation. Every intermediate polynomial of degree <= D is a dense float64 row over the monomials
of degree <= D in a fixed graded order, so one layer's features are one matrix and a Linear layer is
one matrix product. The order is colex on n-subsets: the exponent vector e, with partial sums
s_k = e_1 + ... + e_k, is the subset {k - 1 + s_k : k = 1..n} and has rank sum_k C(k - 1 + s_k, k).
Monomials of degree < D rank below those of degree D, so the first C(n + a, n) entries of a row are
the polynomials of degree <= a, whatever the largest degree. Partial sums add under multiplication
(s(e + f) = s(e) + s(f)), so the index of a product monomial is a table lookup, vectorised over all
pairs and shared by all features of a layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .nn import SLAF

DEFAULT_MAX_TERMS = 200_000
#: the largest max_terms: the monomial table alone is terms x n_inputs int64 (512 MiB per input at this size)
MAX_TERMS_LIMIT = 1 << 26
#: the most float64 values (2 GiB) of one array: a layer's features (width x terms) or a Linear's weights
MAX_CELLS = 1 << 28
_PAIRS = 1 << 21  # multiply in blocks of about this many (monomial pair x feature) products
SUPPORTED = "nn.Linear, SLAF (out_of_range='extrapolate'), nn.Identity and nested nn.Sequential"


@dataclass(frozen=True)
class MultiPoly:
    """p(x) = sum over terms of coef * prod_i x_i ** e_i, in `n_vars` variables x_1..x_n.

    `terms` maps exponent tuples (length n_vars) to nonzero float coefficients.
    """

    n_vars: int
    terms: dict[tuple[int, ...], float]
    _exponents: np.ndarray = field(init=False, repr=False, compare=False)
    _coef: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.n_vars, bool) or not isinstance(self.n_vars, int) or self.n_vars < 0:
            raise ValueError(f"n_vars must be a non-negative integer, got {self.n_vars!r}")
        E = np.array(list(self.terms), dtype=np.int64).reshape(len(self.terms), self.n_vars)
        if (E < 0).any():
            raise ValueError("exponents must be non-negative")
        object.__setattr__(self, "_exponents", E)
        object.__setattr__(self, "_coef", np.array(list(self.terms.values()), dtype=np.float64))

    @property
    def degree(self) -> int:
        """The total degree: the largest exponent sum of a term (0 for the zero polynomial)."""
        return int(self._exponents.sum(axis=1).max()) if len(self.terms) else 0

    @property
    def bound(self) -> int:
        """C(n + D, D): the number of monomials of total degree <= D in n variables."""
        return math.comb(self.n_vars + self.degree, self.degree)

    def __len__(self) -> int:
        return len(self.terms)

    def _sum(self, X, absolute: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_vars:
            raise ValueError(f"X must have shape [batch, {self.n_vars}], got {X.shape}")
        E, c = self._exponents, (np.abs(self._coef) if absolute else self._coef)
        top = int(E.max(initial=0))
        powers = (np.abs(X) if absolute else X)[:, :, None] ** np.arange(top + 1)  # [batch, n, top + 1]
        out = np.zeros(X.shape[0])
        step = max(1, _PAIRS // max(1, X.shape[0]))
        for lo in range(0, len(c), step):
            v = np.ones((X.shape[0], min(step, len(c) - lo)))  # prod_i x_i ** e_i for these terms
            for i in range(self.n_vars):
                e = E[lo:lo + step, i]
                if e.any():
                    v *= powers[:, i, e]
            out += v @ c[lo:lo + step]
        return out

    def __call__(self, X) -> np.ndarray:
        """The values at the rows of X [batch, n_vars], in float64."""
        return self._sum(X, absolute=False)

    def scale(self, X) -> np.ndarray:
        """sum |coef * x**e| at the rows of X: the size that rounding errors of p(X) are relative to."""
        return self._sum(X, absolute=True)

    def to_dict(self) -> dict:
        """JSON-ready: n_vars, degree, monomials, bound and terms as [[exponents], coefficient] pairs."""
        return {"n_vars": self.n_vars, "degree": self.degree, "monomials": len(self), "bound": self.bound,
                "terms": [[list(e), c] for e, c in self.terms.items()]}


def monomial_name(exponents) -> str:
    """'x1^2 x3' for (2, 0, 1); '1' for the constant."""
    parts = [f"x{i + 1}" + (f"^{e}" if e > 1 else "") for i, e in enumerate(exponents) if e]
    return " ".join(parts) or "1"


@dataclass(frozen=True)
class ExpansionSize:
    """What `expand` will build: known from the layers' shapes and degrees, before any arithmetic."""

    n_inputs: int
    n_outputs: int
    degree: int  # total degree of the outputs: the product of the SLAF degrees
    max_degree: int  # the largest degree of any intermediate (== degree unless an SLAF has degree 0)
    terms: int  # C(n + max_degree, max_degree): the most monomials an intermediate polynomial can have
    layer_degrees: tuple[int, ...]  # the degree after each layer
    max_width: int = 0  # the most features of any layer (each a row of `terms` float64 values)


# ---------------------------------------------------------------------------------------------------------
# the layers


def _flatten(model: nn.Module, prefix: str = ""):
    """(path, layer) for every leaf of nested nn.Sequential containers; paths as in named_modules."""
    if not isinstance(model, nn.Sequential):
        yield prefix or "0", model
        return
    for name, child in model.named_children():
        yield from _flatten(child, f"{prefix}.{name}" if prefix else name)


def _describe(path: str, layer) -> str:
    return f"layer {path} ({type(layer).__name__})"


def _check_slaf(path: str, layer: SLAF, width: int) -> None:
    if layer.out_of_range != "extrapolate":
        lo, hi = layer.interval
        raise ValueError(f"{_describe(path, layer)} has out_of_range={layer.out_of_range!r}: it holds its "
                         f"end values outside [{lo:g}, {hi:g}], so the network is not a polynomial; "
                         "expand needs out_of_range='extrapolate'")
    if layer.channels is not None and layer.channels != width:
        raise ValueError(f"{_describe(path, layer)} has {layer.channels} channels but receives {width} "
                         "features")
    want = (layer.degree + 1,) if layer.channels is None else (layer.channels, layer.degree + 1)
    if tuple(layer.coefficients.shape) != want:
        raise ValueError(f"{_describe(path, layer)} has coefficients of shape "
                         f"{tuple(layer.coefficients.shape)}, needs {want}")


def _layers(model) -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"expand takes a torch.nn.Module, got {type(model).__name__}")
    layers = list(_flatten(model))
    for path, layer in layers:
        if type(layer) not in _STEPS:  # exact types: a subclass may compute something else
            raise ValueError(f"{_describe(path, layer)} is not supported; expand takes {SUPPORTED}")
    return layers


def _infer_inputs(layers) -> int:
    for _, layer in layers:
        if isinstance(layer, nn.Linear):
            return layer.in_features
        if isinstance(layer, SLAF) and layer.channels is not None:
            return layer.channels
    raise ValueError("cannot infer the number of inputs (no nn.Linear and no per-channel SLAF): "
                     "pass n_inputs")


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def expansion_size(model: nn.Module, n_inputs: int | None = None) -> ExpansionSize:
    """The degrees and the worst-case term count of `expand(model)`, without expanding.

    ValueError naming the layer for an unsupported layer, a clamping SLAF or mismatched widths.
    """
    layers = _layers(model)
    n = _infer_inputs(layers) if n_inputs is None else _check_count("n_inputs", n_inputs)
    width, degree, degrees, widest = n, 1, [], n
    for path, layer in layers:
        if isinstance(layer, nn.Linear):
            if layer.in_features != width:
                raise ValueError(f"{_describe(path, layer)} takes {layer.in_features} features but receives "
                                 f"{width}")
            width = layer.out_features
            widest = max(widest, width)
        elif isinstance(layer, SLAF):
            _check_slaf(path, layer, width)
            degree *= layer.degree
        degrees.append(degree)
    top = max([1, *degrees])
    return ExpansionSize(n, width, degree, top, terms_bound(n, top), tuple(degrees), widest)


def terms_bound(n: int, degree: int, cap: int | None = None) -> int:
    """C(n + degree, degree), the monomials of degree <= `degree` in n variables; with `cap`, any value
    over `cap` once the count passes it (so that a huge network is refused at once, not after a long
    exact computation)."""
    k = min(n, degree)
    count = 1
    for i in range(1, k + 1):
        count = count * (n + degree - k + i) // i  # C(n + degree - k + i, i), exact at every step
        if cap is not None and count > cap:
            return cap + 1
    return count


def _check_weights(n: int, widths) -> list[int]:
    sizes = [n, *widths, 1]
    weights = max(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if weights > MAX_CELLS:
        raise ValueError(f"a Linear layer of {weights} weights is over the limit of {MAX_CELLS}; use "
                         "narrower layers or fewer inputs")
    return sizes


def check_random_network(n_inputs: int, widths, degree: int, max_terms: int = DEFAULT_MAX_TERMS) -> int:
    """ValueError, before anything is allocated, when `random_network(n_inputs, widths, degree)` or its
    expansion would be too large: more than `max_terms` terms, or an array of more than MAX_CELLS values.
    Returns the term bound."""
    n = _check_count("n_inputs", n_inputs)
    widths = [_check_count("width", w) for w in widths]
    max_terms = _check_count("max_terms", max_terms)
    if max_terms > MAX_TERMS_LIMIT:
        raise ValueError(f"max_terms must be at most {MAX_TERMS_LIMIT}, got {max_terms}")
    sizes = _check_weights(n, widths)
    top, cap = 1, 10**12
    for _ in widths:  # the total degree degree**len(widths), computed only as far as it matters
        top = min(top * degree, cap + 1)
    top = max(1, top)
    terms = terms_bound(n, top, cap)
    if terms > max_terms:
        many = f"more than {cap}" if terms > cap else f"up to {terms}"
        deg = f"over {cap}" if top > cap else str(top)
        raise ValueError(f"expansion would have {many} terms ({n} inputs, total degree {deg}) > max_terms = "
                         f"{max_terms}; use fewer or lower-degree SLAF layers or fewer inputs, or raise "
                         "max_terms")
    if max(sizes) * terms > MAX_CELLS:
        raise ValueError(f"expansion would hold {max(sizes)} x {terms} coefficients, over the limit of "
                         f"{MAX_CELLS}; use narrower layers")
    return terms


# ---------------------------------------------------------------------------------------------------------
# dense polynomial arithmetic over the graded monomial order (see the module docstring)


class _Monomials:
    """The monomials of degree <= D in n variables, ranked in colex order of n-subsets."""

    def __init__(self, n: int, D: int):
        self.n, self.D = n, D
        # T[j, k - 1] = C(k - 1 + j, k): the rank is sum_k T[s_k, k - 1]. Row j is a running sum of row
        # j - 1 (Pascal's rule); every entry is at most C(n + D - 1, n) < size(D), so int64 is exact.
        T = np.zeros((D + 1, n), dtype=np.int64)
        for j in range(1, D + 1):
            T[j] = 1 + np.cumsum(T[j - 1])
        self._T = T
        self._cols = np.arange(n)
        E = self._all_exponents()
        self.exponents = np.empty_like(E)
        self.exponents[self.rank(np.cumsum(E, axis=1))] = E
        self.partial_sums = np.cumsum(self.exponents, axis=1)

    def _all_exponents(self) -> np.ndarray:
        """Every exponent vector of total degree <= D (unordered), one variable at a time."""
        E = np.zeros((1, 0), dtype=np.int64)
        for _ in range(self.n):
            room = self.D - E.sum(axis=1)  # the degree left for the next variable
            reps = room + 1
            nxt = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)  # 0..room per row
            E = np.column_stack([np.repeat(E, reps, axis=0), nxt])
        return E

    def size(self, degree: int) -> int:
        return math.comb(self.n + degree, degree)

    def rank(self, S: np.ndarray) -> np.ndarray:
        """The ranks of the monomials with partial sums S [..., n] (S[..., -1] <= D)."""
        return self._T[S, self._cols].sum(axis=-1)

    def variables(self) -> np.ndarray:
        """x_1..x_n as rows [n, size(1)]."""
        X = np.zeros((self.n, self.size(1)))
        X[np.arange(self.n), self.rank(np.cumsum(np.eye(self.n, dtype=np.int64), axis=1))] = 1.0
        return X

    def multiply(self, P: np.ndarray, a: int, Q: np.ndarray, b: int) -> np.ndarray:
        """Row-wise products: P [w, size(a)] (degree a) times Q [w, size(b)] -> [w, size(a + b)]."""
        w, na, nb, nab = P.shape[0], self.size(a), self.size(b), self.size(a + b)
        out = np.zeros((w, nab))
        Sa, Sb = self.partial_sums[:na], self.partial_sums[:nb]
        rows = max(1, _PAIRS // (nb * self.n))
        for r in range(0, na, rows):
            idx = self.rank(Sa[r:r + rows, None, :] + Sb[None, :, :]).ravel()  # product monomials
            feats = max(1, _PAIRS // idx.size)
            for f in range(0, w, feats):
                g = min(f + feats, w) - f
                prod = P[f:f + g, r:r + rows, None] * Q[f:f + g, None, :]
                flat = (idx[None, :] + nab * np.arange(g)[:, None]).ravel()
                out[f:f + g] += np.bincount(flat, prod.ravel(), minlength=g * nab).reshape(g, nab)
        return out


def _linear(layer: nn.Linear, F: np.ndarray, degree: int, mono: _Monomials):
    W = layer.weight.detach().cpu().double().numpy()
    out = W @ F
    if layer.bias is not None:
        out[:, 0] += layer.bias.detach().cpu().double().numpy()  # rank 0 is the constant monomial
    return out, degree


def _slaf(layer: SLAF, F: np.ndarray, degree: int, mono: _Monomials):
    """Compose feature j's monomial polynomial a_0 + a_1 q + ... + a_d q^d with q = F[j] (Horner)."""
    if layer.channels is None:
        a = np.asarray(layer.polynomial().convert("power", "raw").coef)
        A = np.broadcast_to(a, (F.shape[0], a.size))
    else:
        A = np.array([layer.polynomial(c).convert("power", "raw").coef for c in range(layer.channels)])
    d = layer.degree
    P = A[:, d:].copy()  # degree 0
    for k in range(d - 1, -1, -1):
        P = mono.multiply(P, (d - 1 - k) * degree, F, degree)
        P[:, 0] += A[:, k]
    return P, d * degree


def _identity(layer, F, degree, mono):
    return F, degree


_STEPS = {nn.Linear: _linear, SLAF: _slaf, nn.Identity: _identity}


def expand(model: nn.Module, n_inputs: int | None = None, *,
           max_terms: int = DEFAULT_MAX_TERMS) -> list[MultiPoly]:
    """The network's outputs as explicit polynomials in its inputs, one MultiPoly per output.

    `model` is an nn.Sequential (nested ones are flattened) of nn.Linear, SLAF with
    out_of_range="extrapolate" (any basis, shared or per-channel coefficients) and nn.Identity; a single
    such layer works too. `n_inputs` defaults to the first Linear's in_features. Coefficients are
    computed in float64. ValueError, before any arithmetic, when an intermediate polynomial could have
    more than `max_terms` monomials (see `expansion_size`), or for a layer that is not a polynomial map.
    """
    max_terms = _check_count("max_terms", max_terms)
    size = expansion_size(model, n_inputs)
    if size.terms > max_terms:
        raise ValueError(f"expansion would have up to {size.terms} terms ({size.n_inputs} inputs, total "
                         f"degree {size.max_degree}) > max_terms = {max_terms}; use fewer or lower-degree "
                         "SLAF layers or fewer inputs, or raise max_terms")
    if size.max_width * size.terms > MAX_CELLS:
        raise ValueError(f"expansion would hold {size.max_width} x {size.terms} coefficients, over the limit "
                         f"of {MAX_CELLS}; use narrower layers")
    mono = _Monomials(size.n_inputs, size.max_degree)
    F, degree = mono.variables(), 1
    with torch.no_grad():
        for _, layer in _layers(model):
            F, degree = _STEPS[type(layer)](layer, F, degree, mono)
    F = F[:, :mono.size(degree)]
    out = []
    for row in F:
        nz = np.flatnonzero(row)
        terms = dict(zip(map(tuple, mono.exponents[nz].tolist()), row[nz].tolist(), strict=True))
        out.append(MultiPoly(size.n_inputs, terms))
    return out


def network_outputs(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """The model (a float64 copy; the model itself is untouched) at the rows of X: [batch, outputs]."""
    import copy

    net = copy.deepcopy(model).double().cpu()
    with torch.no_grad():
        y = net(torch.as_tensor(np.asarray(X, dtype=np.float64)))
    return y.reshape(y.shape[0], -1).numpy()


def max_relative_error(polys: list[MultiPoly], model: nn.Module, X: np.ndarray) -> float:
    """max |p(x) - net(x)| / max(|net(x)|, sum |coef x**e|) over the rows of X and the outputs.

    The denominator is the size rounding errors scale with: evaluating the monomial sum in float64 errs
    by a few ulps of sum |coef x**e| even where the terms cancel to a small output.
    """
    want = network_outputs(model, X)
    if want.shape[1] != len(polys):
        raise ValueError(f"the model has {want.shape[1]} outputs, got {len(polys)} polynomials")
    worst = 0.0
    for j, p in enumerate(polys):
        got = p(X)
        denom = np.maximum(np.abs(want[:, j]), p.scale(X))
        err = np.abs(got - want[:, j])  # where denom is 0, got and want are both exactly 0
        worst = max(worst, float(np.max(err / np.maximum(denom, np.finfo(np.float64).tiny), initial=0.0)))
    return worst


def random_network(n_inputs: int, widths, degree: int, basis: str = "chebyshev", *, seed: int = 0,
                   interval=(-3.0, 3.0), backend: str = "reference") -> nn.Sequential:
    """Linear(n -> w1), SLAF, Linear(w1 -> w2), SLAF, ..., Linear(-> 1): seeded random float64 weights
    (scaled by 1/sqrt(fan-in)) and per-channel SLAF coefficients (scaled by 1/(k + 1))."""
    n = _check_count("n_inputs", n_inputs)
    widths = [_check_count("width", w) for w in widths]
    _check_weights(n, widths)  # before allocating them
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    sizes = [n, *widths, 1]
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = nn.Linear(fan_in, fan_out, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) / fan_in ** 0.5)
            lin.bias.copy_(torch.randn(fan_out, generator=g, dtype=torch.float64) / fan_in ** 0.5)
        layers.append(lin)
        if i < len(widths):  # an activation after every hidden layer
            act = SLAF(degree, basis, interval, channels=fan_out, dtype=torch.float64, backend=backend)
            k = torch.arange(degree + 1, dtype=torch.float64)
            with torch.no_grad():
                act.coefficients.copy_(torch.randn(fan_out, degree + 1, generator=g, dtype=torch.float64)
                                       / (k + 1))
            layers.append(act)
    return nn.Sequential(*layers)
