"""What approximation theory predicts for E_n(f), the best uniform error of degree-n polynomials.

Plain functions of a target's descriptors (Lipschitz constant, kinks, complex singularities) and of the
interval [lo, hi]; the report draws them next to the measured errors.

* Kinked (Lipschitz) targets converge algebraically: Jackson's bound ~ 1/n, and for ReLU and |x| the exact
  asymptote from Bernstein's constant.
* Analytic targets converge geometrically, E_n ~ rho**(-n), rho the parameter of the largest Bernstein
  ellipse (foci lo, hi) free of the target's singularities.

References:
    E. W. Cheney, Introduction to Approximation Theory, McGraw-Hill 1966 (2nd ed. AMS Chelsea 1982),
    ch. 4 sec. 6, Jackson's theorems.
    R. S. Varga, A. J. Carpenter, On the Bernstein conjecture in approximation theory,
    Constr. Approx. 1 (1985) 333-348.
    L. N. Trefethen, Approximation Theory and Approximation Practice, SIAM 2013, ch. 8 (Thm 8.2).
"""

from __future__ import annotations

import math

import numpy as np

#: Bernstein's constant beta = lim_{n -> oo} 2n * E_{2n}(|x|) on [-1, 1], to 20 digits.
#: Varga & Carpenter (1985) give 0.2801694990238691330364364912307...
BERNSTEIN_BETA = 0.28016949902386913303


def _degrees(n) -> np.ndarray:
    """Degrees as floats; ValueError for anything but integers >= 0 (a bound at degree -5 is meaningless)."""
    d = np.asarray(n, dtype=float)
    bad = ~(np.isfinite(d) & (d >= 0) & (d == np.floor(d)))
    if np.any(bad):
        first = np.ravel(d)[np.ravel(np.broadcast_to(bad, d.shape))][0]
        raise ValueError(f"degrees must be integers >= 0, got {first:g}")
    return d


def _over(num, n) -> np.ndarray | float:
    """num / n with n <= 0 giving inf (no bound at degree 0), as a float for scalar n."""
    n = _degrees(n)
    out = np.divide(num, n, out=np.full(np.broadcast(num, n).shape, math.inf), where=n > 0)
    return float(out) if out.ndim == 0 else out


def jackson_bound(lipschitz: float, lo: float, hi: float, n) -> np.ndarray | float:
    """Jackson's bound E_n(f) <= (pi/2) * L * ((hi - lo)/2) / (n + 1) for L-Lipschitz f on [lo, hi].

    On [-1, 1] Jackson's theorem for a function with Lipschitz constant L reads
    dist(f, P_n) <= pi * L / (2 (n + 1)); the affine map x = (hi - lo)/2 * t + (lo + hi)/2 multiplies the
    Lipschitz constant of f(x(t)) by (hi - lo)/2. The constant pi/2 is the one of Cheney's proof (Korovkin's
    positive-kernel argument) and is sharp for the periodic Lipschitz class (Favard); for algebraic
    polynomials it is a bound, not an asymptote. `n` may be an array.

    References:
        E. W. Cheney, Introduction to Approximation Theory, 1966, ch. 4 sec. 6 (Jackson's theorems).
    """
    n = _degrees(n)
    out = (math.pi / 2) * float(lipschitz) * (0.5 * (float(hi) - float(lo))) / (n + 1.0)
    return float(out) if np.ndim(out) == 0 else out


def bernstein_abs(a: float, n) -> np.ndarray | float:
    """Asymptote beta * a / n of E_n(|x|) on [-a, a] (inf at n = 0).

    Bernstein's theorem: 2n * E_2n(|x|) -> beta on [-1, 1]; |x| is even, so E_{2k+1} = E_{2k} and the
    asymptote beta / n holds along even n (odd n lag one degree). Scaling x = a t multiplies errors by a.

    References:
        S. N. Bernstein, Sur la meilleure approximation de |x| par des polynomes de degres donnes,
        Acta Math. 37 (1914) 1-57; the constant: Varga & Carpenter, Constr. Approx. 1 (1985) 333-348.
    """
    return _over(BERNSTEIN_BETA * float(a), n)


def bernstein_relu(a: float, n) -> np.ndarray | float:
    """Asymptote beta * a / (2n) of E_n(ReLU) on [-a, a] (inf at n = 0).

    ReLU(x) = (x + |x|)/2 and x is itself a polynomial of degree 1, so for n >= 1
    E_n(ReLU) = E_n(|x|) / 2 ~ beta * a / (2n).

    References:
        Varga & Carpenter, Constr. Approx. 1 (1985) 333-348 (beta); see :func:`bernstein_abs`.
    """
    return _over(BERNSTEIN_BETA * float(a), 2.0 * _degrees(n))


def ellipse_rho(z: complex, lo: float, hi: float) -> float:
    """Parameter rho >= 1 of the Bernstein ellipse with foci lo, hi that passes through z.

    With t = (2z - lo - hi) / (hi - lo), rho = |t + sqrt(t^2 - 1)| on the branch with rho >= 1 (the two
    branches multiply to 1). Real points inside [lo, hi] give rho = 1.

    References:
        L. N. Trefethen, Approximation Theory and Approximation Practice, SIAM 2013, ch. 8.
    """
    t = (2.0 * complex(z) - float(lo) - float(hi)) / (float(hi) - float(lo))
    s = np.sqrt(complex(t * t - 1.0))
    return float(max(abs(t + s), abs(t - s)))


def analytic_rate(target, lo: float, hi: float) -> float | None:
    """The geometric rate rho of E_n(target) on [lo, hi]: E_n <= 2 M rho^(-n) / (rho - 1).

    rho is the smallest Bernstein-ellipse parameter over the target's listed complex singularities (the
    largest ellipse with foci lo, hi in which the target is analytic); inf for an entire target; None for
    a target with kinks (not analytic: convergence is algebraic, see :func:`jackson_bound`). M is the
    maximum of |f| on that ellipse.

    References:
        L. N. Trefethen, Approximation Theory and Approximation Practice, SIAM 2013, Thm 8.2.
    """
    if not getattr(target, "analytic", not getattr(target, "kinks", ())):
        return None
    points = [complex(z) for z in getattr(target, "singularities", ())]
    if getattr(target, "entire", False) or not points:
        return math.inf
    return min(ellipse_rho(z, lo, hi) for z in points)


def bernstein_asymptote(target, lo: float, hi: float, n) -> tuple[str, np.ndarray] | None:
    """(label, values) of Bernstein's asymptote for |x|-like targets on a symmetric [-a, a], else None.

    abs: beta*a/n; relu = (x + |x|)/2: beta*a/(2n); leaky_relu with slope s = ((1+s) x + (1-s)|x|)/2:
    beta*a*(1-s)/(2n) (a degree-1 term does not change E_n for n >= 1).

    References:
        Varga & Carpenter, Constr. Approx. 1 (1985) 333-348; see :func:`bernstein_abs`.
    """
    if not (math.isclose(lo, -hi, rel_tol=1e-12, abs_tol=1e-12) and hi > 0):
        return None
    name = getattr(target, "name", "")
    n = _degrees(n)
    if name == "abs":
        return "Bernstein β·a/n", np.asarray(bernstein_abs(hi, n), dtype=float)
    if name == "relu":
        return "Bernstein β·a/(2n)", np.asarray(bernstein_relu(hi, n), dtype=float)
    slope = dict(getattr(target, "params", {}) or {}).get("slope")
    if name == "leaky_relu" and slope is not None:
        return "Bernstein β·a·(1−s)/(2n)", abs(1.0 - slope) * np.asarray(bernstein_relu(hi, n), dtype=float)
    return None


def rate_line(rho: float, anchor: tuple[float, float], degrees) -> np.ndarray:
    """C * rho^(-n) through the point anchor = (degree, error), at `degrees`."""
    n0, e0 = float(anchor[0]), float(anchor[1])
    n = _degrees(degrees)
    return np.exp(math.log(e0) - (n - n0) * math.log(rho))


def theory_curves(target, lo: float, hi: float, degrees, anchor: tuple[float, float] | None = None
                  ) -> dict[str, np.ndarray]:
    """Theory curves at `degrees` for plotting against measured max errors: name -> array.

    * "Jackson": :func:`jackson_bound`, for every target with a finite Lipschitz constant.
    * "Bernstein β·a/(2n)" for relu, "Bernstein β·a/n" for abs (and the leaky_relu analogue) on a
      symmetric interval [-a, a]: :func:`bernstein_asymptote`.
    * "ρ^-n (ρ=...)": for an analytic target with finite rho (see :func:`analytic_rate`), the line
      C * rho^(-n) through `anchor` = (degree, error); omitted when anchor is None or not positive.

    References:
        Cheney 1966 ch. 4 sec. 6; Varga & Carpenter 1985; Trefethen, ATAP, Thm 8.2.
    """
    n = _degrees(degrees)
    out: dict[str, np.ndarray] = {}
    lip = float(getattr(target, "lipschitz", math.nan))
    if math.isfinite(lip):
        out["Jackson"] = np.asarray(jackson_bound(lip, lo, hi, n), dtype=float)
    asym = bernstein_asymptote(target, lo, hi, n)
    if asym is not None:
        out[asym[0]] = asym[1]
    rho = analytic_rate(target, lo, hi)
    if (anchor is not None and rho is not None and math.isfinite(rho) and rho > 1
            and float(anchor[1]) > 0 and math.isfinite(float(anchor[1]))):
        out[f"ρ^-n (ρ={rho:.3g})"] = rate_line(rho, anchor, n)
    return out
