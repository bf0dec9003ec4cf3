"""What the data shows, in words: findings per target, the gradient fits' verdicts, the target's facts."""

from __future__ import annotations

import math

import numpy as np

from .. import theory
from .data import (
    ROUNDOFF,
    STALL_GAP,
    Group,
    diverges,
    estimated_fields,
    is_rational,
    poly_minimax,
    reference,
    series,
    target_of,
)
from .labels import basis_label, complex_text, degree_list, fmt, interval, series_label


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def _estimated(tg, name: str) -> str:
    """' (estimated)' when the catalogue estimated this field of the target instead of declaring it."""
    return " (estimated)" if name in estimated_fields(tg) else ""


def target_lines(g: Group) -> list[str]:
    """The target's formula and the facts the theory uses, each marked when it was estimated."""
    tg = target_of(g)
    if tg is None:
        return ["Not in the target catalogue: no formula, no theory curves, no overlay."]
    formula = getattr(tg, "formula", "")
    lines = [f"- Formula: `{formula}`" if formula else f"- {tg.title}"]
    lines.append(f"- Lipschitz constant: {fmt(tg.lipschitz, 4)}{_estimated(tg, 'lipschitz')}")
    kinks = getattr(tg, "kinks", ())
    lines.append((f"- Kinks: {', '.join(fmt(k, 4) for k in kinks)}" if kinks else "- Kinks: none")
                 + _estimated(tg, "kinks"))
    rho = theory.analytic_rate(tg, g.lo, g.hi)
    if rho is None:
        lines.append("- Not analytic (kinked): algebraic convergence, no Bernstein ellipse.")
    elif math.isinf(rho):
        lines.append("- Entire: no singularity, ρ = ∞ (faster than any geometric rate)."
                     + _estimated(tg, "singularities"))
    else:
        z = min(tg.singularities, key=lambda s: theory.ellipse_rho(s, g.lo, g.hi))
        lines.append(f"- Nearest singularity: {complex_text(z)}; Bernstein ellipse ρ = {rho:.4g} on "
                     f"{interval(g.lo, g.hi)}{_estimated(tg, 'singularities')}")
    return lines


def theory_note(g: Group) -> str:
    """'' or a sentence saying which theory inputs were estimated (the bounds drawn from them are too)."""
    est = sorted(estimated_fields(target_of(g)) & {"lipschitz", "kinks", "singularities"})
    if not est:
        return ""
    return (f"The theory rows and curves are estimated: the catalogue entry does not declare its "
            f"{', '.join(est)}, which were estimated from the formula.")


def findings(group: Group) -> list[str]:
    """Plain statements the group's data supports (minimax vs lstsq, bounds, observed rates)."""
    out = []
    ss = series(group)
    tg = target_of(group)

    # minimax <= lstsq in max error, basis by basis
    parts, ratios = [], []
    for (m, b, v, _), mm in ss.items():
        if m != "minimax":
            continue
        ls = ss.get(("lstsq", b, v, "uniform"))
        if not ls:
            continue
        common = [d for d in mm if d in ls and math.isfinite(mm[d]["max_error"])
                  and math.isfinite(ls[d]["max_error"])]
        if not common:
            continue
        bad = [d for d in common if mm[d]["max_error"] > ls[d]["max_error"] * (1 + 1e-9)]
        ratios += [ls[d]["max_error"] / mm[d]["max_error"] for d in common if mm[d]["max_error"] > 0]
        text = f"{basis_label(b, v)} {len(common) - len(bad)}/{len(common)}"
        if bad:
            text += f" (not at n = {degree_list(bad)})"
        parts.append(text)
    if parts:
        out.append("Minimax max error ≤ lstsq max error at: " + "; ".join(parts) + " degrees."
                   + (f" Median lstsq/minimax max-error ratio: {np.median(ratios):.3g}." if ratios else ""))

    # rational against polynomial minimax at equal parameter count
    poly = poly_minimax(group)
    for key, s in ss.items():
        common = [d for d, r in s.items() if is_rational(r) and d in poly and d >= 2
                  and math.isfinite(r["max_error"]) and math.isfinite(poly[d]["max_error"])
                  and poly[d]["max_error"] > ROUNDOFF]
        if common:
            better = [d for d in common if s[d]["max_error"] < poly[d]["max_error"]]
            d = common[-1]
            out.append(f"{series_label(key)} (type (⌈n/2⌉, ⌊n/2⌋), as many parameters as degree n) has a "
                       f"smaller max error than the polynomial minimax at {len(better)} of {len(common)} "
                       f"degrees; at n = {d}: {fmt(s[d]['max_error'])} against {fmt(poly[d]['max_error'])}.")

    # Jackson's bound
    if tg is not None and math.isfinite(getattr(tg, "lipschitz", math.nan)):
        est = " (from an estimated Lipschitz constant)" if "lipschitz" in estimated_fields(tg) else ""
        above = []
        for k, s in ss.items():
            ds = [d for d, r in s.items()
                  if r["max_error"] > theory.jackson_bound(tg.lipschitz, group.lo, group.hi, d)]
            if ds:
                above.append(f"{series_label(k)} at n = {degree_list(ds)}")
        if above:
            out.append(f"Above Jackson's bound (π/2)·L·((hi−lo)/2)/(n+1){est}: " + "; ".join(above) + ".")
        else:
            out.append(f"Every fit's max error lies below Jackson's bound (π/2)·L·((hi−lo)/2)/(n+1){est}.")

    # observed rate against the theory
    if ss:
        key, ref = reference(group)
        name = series_label(key)
        pts = [(d, r["max_error"]) for d, r in ref.items()
               if d >= 1 and math.isfinite(r["max_error"]) and r["max_error"] > ROUNDOFF]
        rho = theory.analytic_rate(tg, group.lo, group.hi) if tg is not None else None
        if len(pts) >= 3:
            n = np.array([p[0] for p in pts], dtype=float)
            e = np.log([p[1] for p in pts])
            if rho is None:
                order_ = -_slope(np.log(n), e)
                out.append(f"{name}: max error decays like n^−{order_:.2f} over n = {int(n[0])}…{int(n[-1])} "
                           "(kinked target: algebraic convergence, Jackson's order is n^−1).")
            else:
                rho_obs = math.exp(-_slope(n, e))
                est = " (estimated)" if "singularities" in estimated_fields(tg) else ""
                pred = ("entire target: theory predicts faster than any geometric rate" if math.isinf(rho)
                        else f"predicted ρ = {rho:.3g}{est}")
                out.append(f"{name}: max error decays geometrically, E_n ≈ C·ρ^−n with observed ρ ≈ "
                           f"{rho_obs:.3g} over n = {int(n[0])}…{int(n[-1])} ({pred}).")
        even = [d for d in ref if d >= 2 and d % 2 == 0 and math.isfinite(ref[d]["max_error"])]
        asym = theory.bernstein_asymptote(tg, group.lo, group.hi, even) if tg is not None and even else None
        if asym is not None:
            label, values = asym
            d, value = even[-1], float(values[-1])
            ratio = ref[d]["max_error"] / value
            out.append(f"{name} against {label}: at n = {d}, E_n / asymptote = {ratio:.4g} "
                       f"(β = {theory.BERNSTEIN_BETA:.4g}; the ratio tends to 1 as n → ∞ along even n).")
    return out



def gradient_findings(group: Group) -> list[str]:
    """Per basis, whether gradient descent diverges (its max error grows with the degree), stalls (loss
    more than 1 + STALL_GAP times the least-squares optimum) or reaches the optimum; with the design's
    condition number."""
    out = []
    for (_, b, v, w), s in series(group, "gradient").items():
        label = basis_label(b, v, w)
        dmax = max(s)
        cond = s[dmax]["condition_number"]
        cond_text = f"; condition number at n = {dmax}: {fmt(cond)}" if math.isfinite(cond) else ""
        steps = sorted({r["iterations"] for r in s.values()})
        steps_text = f" after {steps[0]} steps" if len(steps) == 1 else ""
        stalled = [d for d, r in s.items() if not (r["gap"] <= STALL_GAP)]
        div = diverges(s)
        if div is not None:
            d0, e0, d1, e1 = div
            where = degree_list(stalled) if stalled else "–"
            out.append(f"{label}: gradient descent diverges{steps_text}: the max error grows from {fmt(e0)} "
                       f"at n = {d0} to {fmt(e1)} at n = {d1} instead of falling (loss more than "
                       f"{1 + STALL_GAP:g}× the lstsq optimum at n = {where}){cond_text}.")
        elif stalled:
            out.append(f"{label}: gradient descent stalls{steps_text} (loss more than {1 + STALL_GAP:g}× the "
                       f"lstsq optimum) at {len(stalled)} of {len(s)} degrees, n = {degree_list(stalled)}"
                       f"{cond_text}.")
        else:
            out.append(f"{label}: within {STALL_GAP:g} of the lstsq optimum at every degree{steps_text}"
                       f"{cond_text}.")
    return out


def summary_lines(gs: list[Group]) -> list[str]:
    """One sentence per group under the Summary tables: which series diverge (they are clipped in plots)."""
    out = []
    for g in gs:
        div = [(series_label(k), diverges(s)) for k, s in series(g).items()]
        div = [(name, d) for name, d in div if d is not None]
        if div:
            out.append(f"{g.target}: " + "; ".join(f"{name} diverges (max error {fmt(d[1])} at n = {d[0]} "
                                                  f"→ {fmt(d[3])} at n = {d[2]})" for name, d in div) + ".")
    return out
