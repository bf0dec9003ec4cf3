"""Best uniform (minimax) polynomial approximation by the Remez exchange algorithm.

The exchange runs in the Chebyshev basis on the mapped variable t in [-1, 1], where it is well
conditioned; the caller converts the result to any other basis. Targets that are even, odd, "constant +
odd" (sigmoid, tanh) or "linear + even" (ReLU, GELU, Swish, softplus, leaky ReLU) on a symmetric
interval make the classical exchange degenerate: a symmetric reference forces the levelled error h to 0
for one parity of n. For those the problem is reduced to the half interval [0, 1] with the even
(T_0, T_2, ...) or odd (T_1, T_3, ...) Chebyshev polynomials, which form a Haar system there, and the
exactly representable part (the constant or the linear term) is added back.

References:
    E. Ya. Remez (1934); the multi-point exchange as in R. Pachon and L. N. Trefethen, "Barycentric-Remez
    algorithms for best polynomial approximation in the chebfun system", BIT 49 (2009) 721-741.
    de la Vallee Poussin: for a reference on which f - p alternates in sign, min |f - p| <= E_n(f).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C

from .norms import grid_size, signed_extrema

EPS = np.finfo(float).eps


@dataclass
class RemezResult:
    cheb: np.ndarray  # Chebyshev coefficients on t in [-1, 1]
    levelled_error: float  # |h| of the last reference: a lower bound on E_n
    max_error: float  # sup |f - p| found on the last search: an upper bound on E_n
    iterations: int
    converged: bool
    note: str  # "", "resolution-limited", "symmetric: ...", or why it stopped
    history: list[tuple[float, float]]  # (levelled, max) per iteration


def parity(f: Callable, breaks) -> str:
    """Classify f on [-1, 1]: 'even', 'odd', 'const+odd', 'linear+even' or 'none' (to a few ulps)."""
    t = np.linspace(0.0, 1.0, 257)
    t = np.union1d(t, np.abs(np.asarray(breaks, dtype=float)))
    fp, fm = f(t), f(-t)
    tol = 16 * EPS * max(1.0, float(np.max(np.abs(np.r_[fp, fm]))))
    even, odd = 0.5 * (fp + fm), 0.5 * (fp - fm)
    if np.max(np.abs(odd)) <= tol:
        return "even"
    if np.max(np.abs(even - even[0])) <= tol:
        return "odd" if abs(even[0]) <= tol else "const+odd"
    if np.max(np.abs(odd - odd[-1] * t)) <= tol:
        return "linear+even"
    return "none"


@dataclass(frozen=True)
class Symmetry:
    """A target's symmetry on [-1, 1] and the half-interval problem on [0, 1] it reduces to.

    g is approximated on [0, 1] by the even (first = 0) or odd (first = 1) basis functions; `constant`
    (const+odd) and `slope` (linear+even, the coefficient of t) are represented exactly and added back.
    """

    kind: str  # as parity(): "even", "odd", "const+odd", "linear+even" or "none"
    g: Callable
    first: int = 0
    constant: float = 0.0
    slope: float = 0.0


def reduce_symmetry(f: Callable, breaks) -> Symmetry:
    """The half-interval problem of f (the classification of :func:`parity`); kind "none": g = f."""
    kind = parity(f, breaks)
    if kind in ("even", "odd"):
        return Symmetry(kind, f, 0 if kind == "even" else 1)
    if kind == "const+odd":
        return Symmetry(kind, lambda t: 0.5 * (f(t) - f(-t)), 1, constant=float(f(np.zeros(1))[0]))
    if kind == "linear+even":
        slope = 0.5 * float(f(np.ones(1))[0] - f(-np.ones(1))[0])
        return Symmetry(kind, lambda t: 0.5 * (f(t) + f(-t)), 0, slope=slope)
    return Symmetry("none", f)


def alternating_window(xs: np.ndarray, es: np.ndarray, count: int) -> np.ndarray | None:
    """The exchange: indices of `count` consecutive alternating extrema that hold the largest |e| and have
    the largest min |e|; None if there are fewer than `count`."""
    if len(xs) < count:
        return None
    imax = int(np.argmax(np.abs(es)))
    best, best_h = None, -1.0
    for i in range(max(0, imax - count + 1), min(imax, len(xs) - count) + 1):
        h = float(np.min(np.abs(es[i:i + count])))
        if h > best_h:
            best, best_h = np.arange(i, i + count), h
    return best


def clear_of(t: np.ndarray, holes, delta: float) -> np.ndarray:
    """t with every point closer than `delta` to a hole moved to that hole +- delta (its own side).

    A hole is a point where the weighted error is 0/0 (a pin, where the signed weight is 0; a zero of f
    under the relative weight 1/|f|) but has a finite limit: the error there is taken at distance delta,
    which moves a smooth extremum's value by O(delta**2).
    """
    t = np.asarray(t, dtype=float)
    for z in holes:
        near = np.abs(t - z) < delta
        if near.any():
            t = np.where(near, np.where(t >= z, z + delta, z - delta), t)
    return t


#: how far (in t) the weighted error is kept from its holes (see :func:`clear_of`)
HOLE = 2.0**-26


def _remez_core(g: Callable, cols: Callable, nfun: int, ref: np.ndarray, edges: np.ndarray,
                degree: int, rtol: float, maxiter: int, weight: Callable | None = None, holes=(),
                scale: float | None = None):
    """Minimax of weight * (g - q) on [edges[0], edges[-1]], q in span{cols(t)[:, k], k < nfun}.

    The span is a Haar system there after division by the weight's zeros (the pins), and `weight` is a
    signed weight, nonzero off the `holes`. Without a weight this is the classical exchange.
    """
    def at(t):  # the points the error is evaluated at: off the holes
        return clear_of(t, holes, HOLE) if len(holes) else t

    def err(t, b):
        t = at(t)
        r = g(t) - cols(t)[:, :nfun] @ b
        return r if weight is None else weight(t) * r

    # rounding noise of f - p: f to a few ulps, p by Clenshaw with error ~ (degree + 2) eps |p|
    if scale is None:
        scale = float(np.max(np.abs(g(np.linspace(edges[0], edges[-1], 129)))))
    floor = 4 * (degree + 2) * EPS * max(scale, np.finfo(float).tiny)
    history = []
    best, gap = None, np.inf
    signs = (-1.0) ** np.arange(nfun + 1)
    # a weighted exchange's max error need not fall at every step far from the optimum: it may rise a few
    # times before the reference settles (the classical one stops at the first rise, always rounding noise)
    patience, worse = (0 if weight is None else 3), 0
    for it in range(1, maxiter + 1):
        ref = at(ref)
        A = np.column_stack([cols(ref)[:, :nfun], signs if weight is None else signs / weight(ref)])
        sol = np.linalg.solve(A, g(ref))
        b, h = sol[:nfun], abs(sol[nfun])
        if weight is not None:
            # the weighted error's own rounding: |w| (|g| + sum |b_j col_j|), which exceeds |w g| where the
            # columns cancel (relative error near a zero of f, large coefficients)
            tg = at(np.linspace(edges[0], edges[-1], 257))
            noise = np.abs(weight(tg)) * (np.abs(g(tg)) + np.abs(cols(tg)[:, :nfun]) @ np.abs(b))
            floor = max(floor, 4 * (degree + 2) * EPS * float(np.max(noise)))
        xs, es = signed_extrema(lambda t, b=b: err(t, b), edges, grid_size(degree))
        emax = float(np.max(np.abs(es)))
        history.append((h, emax))
        if best is not None and emax > best[2]:
            worse += 1
            if worse > patience or best[2] - best[1] <= floor:
                # exchanging on rounding noise made things worse: keep the best iterate
                b, h, emax = best
                ok = emax - h <= floor
                return b, h, emax, it, ok, "resolution-limited" if ok else "stalled", history
        else:
            best = (b, h, emax)
        if emax - h <= rtol * emax:
            # at the rounding floor the certificate holds only to rounding: say so, as below
            return b, h, emax, it, True, "resolution-limited" if emax <= floor else "", history
        # the certificate's gap is rounding noise in evaluating f - p, and exchanging no longer shrinks it
        if emax - h <= floor and emax - h > 0.5 * gap:
            return b, h, emax, it, True, "resolution-limited", history
        gap = emax - h
        idx = alternating_window(xs, es, nfun + 1)
        if idx is None:
            ok = gap <= floor
            return (b, h, emax, it, ok,
                    "resolution-limited" if ok else f"fewer than {nfun + 1} alternating extrema", history)
        ref = xs[idx]
    return b, h, emax, maxiter, False, "maximum iterations reached", history


def remez(f: Callable, degree: int, kinks_t=(), rtol: float = 1e-9, maxiter: int = 60) -> RemezResult:
    """Best approximation of degree `degree` to f(t) on [-1, 1] (f vectorised over float64 arrays)."""
    kinks = np.asarray([k for k in kinks_t if -1.0 < k < 1.0], dtype=float)
    n = degree
    sym = reduce_symmetry(f, kinks)
    if sym.kind == "linear+even" and n == 0:
        sym = Symmetry("none", f)  # the linear part is not representable; this case is not degenerate anyway
    if sym.kind == "none":
        edges = np.unique(np.r_[-1.0, kinks, 1.0])
        ref = -np.cos(np.pi * np.arange(n + 2) / (n + 1))
        b, h, emax, it, conv, note, hist = _remez_core(
            f, lambda t: C.chebvander(t, n), n + 1, ref, edges, n, rtol, maxiter)
        return RemezResult(b, h, emax, it, conv, note, hist)

    # Half-interval problem on [0, 1] in the even (first = 0) or odd (first = 1) Chebyshev polynomials.
    fixed = np.zeros(n + 1)
    fixed[0] = sym.constant
    if n >= 1:
        fixed[1] = sym.slope  # T_1 = t
    first, g = sym.first, sym.g
    idx = np.arange(first, n + 1, 2)
    nfun = len(idx)
    # reference: the nfun + 1 nonnegative extrema of T_(2 nfun + first), ascending
    ref = np.cos(np.pi * np.arange(nfun, -1, -1) / (2 * nfun + first))
    edges = np.unique(np.r_[0.0, np.abs(kinks), 1.0])
    b, h, emax, it, conv, note, hist = _remez_core(
        g, lambda t: C.chebvander(t, n)[:, idx], nfun, ref, edges, n, rtol, maxiter)
    c = fixed
    c[idx] += b
    note = "; ".join(s for s in (f"symmetric: {sym.kind}", note) if s)
    return RemezResult(c, h, emax, it, conv, note, hist)


def _even(w: Callable, holes) -> bool:
    """Whether the weight w is even on [-1, 1] (to a few ulps), sampled off its holes."""
    t = clear_of(np.linspace(1.0 / 257, 1.0, 256), np.abs(np.asarray(holes, dtype=float)), HOLE)
    a, b = w(t), w(-t)
    return bool(np.all(np.abs(a - b) <= 16 * EPS * np.maximum(np.abs(a), np.abs(b))))


def _start(G: Callable, cols: Callable, nfun: int, sw: Callable, holes, edges, degree: int,
           fallback: np.ndarray):
    """The first reference of a weighted exchange: the alternating extrema of the weighted least-squares
    error on a dense grid (and that solution, and its weighted max error).

    Chebyshev points ignore the weight: where it is small (near a pin, where it vanishes, or in a normal
    density's tails) the levelled error of such a reference is ~0 and the exchange can stall there; the
    least-squares error already nearly equioscillates in the weighted norm."""
    if nfun == 0:
        return fallback, np.zeros(0), np.inf
    m = 4 * degree + 64  # Chebyshev points per panel: resolve the least-squares error's oscillation
    u = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    t = clear_of((edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * u).ravel(), holes, HOLE)
    s = sw(t)
    b = np.linalg.lstsq(cols(t)[:, :nfun] * s[:, None], G(t) * s, rcond=None)[0]

    def err(z):
        z = clear_of(z, holes, HOLE)
        return sw(z) * (G(z) - cols(z)[:, :nfun] @ b)

    xs, es = signed_extrema(err, edges, grid_size(degree))
    idx = alternating_window(xs, es, nfun + 1)
    return (fallback if idx is None else xs[idx]), b, float(np.max(np.abs(es)))


def remez_constrained(f: Callable, degree: int, kinks_t=(), *, weight: Callable | None = None, pins_t=(),
                      holes_t=(), parity: str | None = None, rtol: float = 1e-9, maxiter: int = 60,
                      scale: float | None = None) -> RemezResult:
    """Best approximation of degree `degree` to f(t) on [-1, 1] in the weighted sup norm max |w (f - p)|,
    among the p with p(t_k) = f(t_k) at the pins (and, with `parity`, even or odd p).

    The pins are imposed by substitution: p = L + P q, L the interpolant of f at the pins in the first k
    basis functions, P(t) = prod (t - t_k). Then w (f - p) = w sgn(P) |P| ((f - L)/P - q): the best q is
    the weighted minimax of (f - L)/P in the Haar system of polynomials of degree n - k, with the weight
    w |P| (positive off the pins), so de la Vallee Poussin certifies the constrained problem: h <= E <= max.
    The exchange runs on the undivided form (target f - L, basis P T_j, signed weight w sgn(P)) and keeps
    its points off the pins and the `holes` (zeros of f where w = 1/|f|) by :func:`clear_of`.

    A target that is even or odd (or constant + odd, linear + even), with an even weight and a symmetric
    pin set, reduces to [0, 1] as in :func:`remez`; there a pin at X is the pin at |X|, and
    P(t) = prod (t**2 - X**2). `parity` forces that reduction (a pin at X then holds at -X too):
    ValueError unless the target has that symmetry.
    """
    n = degree
    kinks = np.asarray([k for k in kinks_t if -1.0 < k < 1.0], dtype=float)
    pins = np.unique(np.asarray(pins_t, dtype=float))
    holes = np.unique(np.r_[np.asarray(holes_t, dtype=float), pins])
    w = weight if weight is not None else (lambda t: np.ones_like(t))
    sym = reduce_symmetry(f, kinks)
    if parity is not None and sym.kind != parity:
        raise ValueError(f"parity {parity!r} forced, but the target is {sym.kind!r} on the interval "
                         f"(allowed: a target of that parity; lstsq takes any target)")
    # the reduction imposes a pin at X also at -X: it is the problem's own only for a symmetric pin set
    symmetric_pins = np.array_equal(pins, np.sort(-pins))
    if parity is None and ((sym.kind == "linear+even" and n == 0) or
                           (sym.kind != "none" and not (_even(w, holes) and symmetric_pins))):
        sym = Symmetry("none", f)
    if sym.kind == "none":
        first, step, g, lo = 0, 1, f, -1.0
        fixed = np.zeros(n + 1)
        roots = pins
    else:
        first, step, g, lo = sym.first, 2, sym.g, 0.0
        fixed = np.zeros(n + 1)
        fixed[0] = sym.constant
        if n >= 1:
            fixed[1] = sym.slope
        roots = np.unique(np.abs(pins))
        if first == 1:
            roots = roots[roots > 0]  # odd q and odd g both vanish at 0: that pin holds by itself
        holes = np.unique(np.abs(holes))
    idx = np.arange(first, n + 1, step)
    k = len(roots)
    if k and k >= len(idx):
        raise ValueError(f"{k} pin(s) leave no free coefficient at degree {n} (at most {len(idx) - 1} here)")
    # P: prod (t - r) on [-1, 1], prod (t**2 - r**2) = prod ((T_2 + 1)/2 - r**2) on [0, 1] (exactly even)
    pc = np.ones(1)
    for r in roots:
        pc = C.chebmul(pc, [-r, 1.0] if step == 1 else [0.5 - r * r, 0.0, 0.5])
    lc = np.zeros(n + 1)
    if k:
        lc[idx[:k]] = np.linalg.solve(C.chebvander(roots, n)[:, idx[:k]], g(roots))
    qidx = idx[: len(idx) - k]  # q's basis functions: degree n - (deg P)
    nq = int(qidx[-1]) if len(qidx) else 0  # none: an odd target at degree 0, whose best is p = 0

    def G(t):
        return g(t) - C.chebval(t, lc)

    def cols(t):
        return C.chebval(t, pc)[:, None] * C.chebvander(t, nq)[:, qidx]

    def sw(t):  # the signed weight w sgn(P)
        return w(t) * np.sign(C.chebval(t, pc))

    nfun = len(qidx)
    if step == 1:
        ref = -np.cos(np.pi * np.arange(nfun + 1) / nfun)
    else:
        ref = np.cos(np.pi * np.arange(nfun, -1, -1) / (2 * nfun + first))
    edges = np.unique(np.r_[lo, kinks if step == 1 else np.abs(kinks), 1.0])
    ref, b, emax = _start(G, cols, nfun, sw, holes, edges, n, ref)
    if scale is None:
        scale = float(np.max(np.abs(sw(clear_of(np.linspace(lo, 1.0, 129), holes, HOLE)) * g(
            clear_of(np.linspace(lo, 1.0, 129), holes, HOLE)))))
    if emax <= 4 * (n + 2) * EPS * max(scale, np.finfo(float).tiny):
        # f is in the space to rounding (the exchange would only chase rounding noise): E = 0 <= emax
        h, it, conv, note, hist = 0.0, 1, True, "resolution-limited", [(0.0, emax)]
    else:
        b, h, emax, it, conv, note, hist = _remez_core(
            G, cols, nfun, ref, edges, n, rtol, maxiter, weight=sw, holes=holes, scale=scale)
    qc = np.zeros(nq + 1)
    qc[qidx] = b
    c = fixed + lc
    prod = C.chebmul(pc, qc)
    c[: len(prod)] += prod
    if sym.kind in ("even", "odd"):
        c[np.arange(1 - first, n + 1, 2)] = 0.0  # zero in exact arithmetic; no rounding residue either
    note = "; ".join(s for s in ((f"symmetric: {sym.kind}" if sym.kind != "none" else ""), note) if s)
    return RemezResult(c, h, emax, it, conv, note, hist)
