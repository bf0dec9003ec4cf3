"""README.md of a report: a Summary on top, then one section per target, then the method sections."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._io import atomic_write, save_figure
from ..executors import one_thread
from ..results import normalise_row
from .coefs import is_rounded, rounding_section
from .cost import section as cost_section
from .data import (
    FLOOR_FACTOR,
    REPORT_DTYPES,
    STALL_GAP,
    TOLERANCES,
    Group,
    floors,
    groups,
    params_key,
    rel_gap,
    target_of,
)
from .figures import error_figure, overlay_figure, pick_overlay
from .figures import title as group_title
from .labels import basis_label, degree_list, fmt, interval, order
from .prose import findings, gradient_findings, summary_lines, target_lines, theory_note
from .tables import (
    cost_table,
    floor_table,
    glance_table,
    gradient_table,
    minimax_table,
    pau_reference,
    rational_table,
    summary_table,
)

META_ORDER = ("machine", "python", "numpy", "torch", "date", "command", "seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def file_tags(gs: Sequence[Group]) -> dict[tuple, str]:
    """Per group the file-name stem: the target, plus interval/params when the target has several groups."""
    tags = {}
    for g in gs:
        same = [h for h in gs if h.target == g.target]
        tag = g.target
        if len(same) > 1:
            if len({(h.lo, h.hi) for h in same}) > 1:
                tag += f"_{g.lo:g}_{g.hi:g}"
            if len({params_key(h.params) for h in same}) > 1:
                tag += "_" + "_".join(f"{k}={v:g}" for k, v in sorted(g.params.items()))
        tags[g.key] = _slug(tag)
    return tags


def meta_line(meta: Mapping | None) -> str:
    if not meta:
        return "**Machine and date:** not recorded."
    keys = [k for k in META_ORDER if k in meta] + [k for k in meta if k not in META_ORDER]
    parts = []
    for k in keys:
        v = meta[k]
        if k == "command":
            parts.append(f"command `{v}`")
        elif k == "seconds":
            parts.append(f"default-suite fitting time {v} s")
        else:
            parts.append(f"{k} {v}")
    return "**Machine and date:** " + "; ".join(parts) + "."


def floor_lines(per_group) -> list[str]:
    """The Summary's part on dtypes: the floor table (see tables.floor_table), or nothing."""
    t = floor_table(per_group)
    if not t:
        return []
    return ["**The floor in each dtype.** The minimax (chebyshev) fits evaluated as the SLAF kernels "
            "evaluate them in the dtype (coefficients and inputs in it, the kernel's compute precision, "
            "output rounded to it) against the float64 target at every representable input (float32: a dense "
            "sample plus the error's extremum neighbourhoods). 'No gain beyond n': the lowest degree whose "
            f"achieved error is within {FLOOR_FACTOR:g}× the best in that dtype, given only where rounding "
            f"sets the error at the highest degree (achieved ≥ {FLOOR_FACTOR:g}× exact there). 'Native op': "
            "torch's own activation in the dtype (F.gelu, F.silu, torch.tanh, ...), measured the same way.",
            "", t]


def summary(gs: Sequence[Group], bench: Sequence[Mapping] | None, per_group=()) -> list[str]:
    """The Summary section: per group, the degree each method needs for each tolerance; then the floor in
    each dtype (`per_group`: (group, floors) pairs)."""
    tols = ", ".join(f"{t:g}" for t in TOLERANCES)
    md = ["## Summary", "",
          f"For each target: the lowest degree n at which each method's max error reaches {tols} (over its "
          "bases; rational P/Q at m + n, the same parameter count), the best method, and the SLAF layer's "
          "kernel cost at the lowest polynomial degree that reaches the tolerance"
          + (" (from the last `slaf-approx bench` run)." if bench else
             " (not measured: no `slaf-approx bench` run was found).") + " '> N': not reached up to n = N.",
          ""]
    for g in gs:
        md += [f"**{g.target} on {interval(g.lo, g.hi)}**", "", glance_table(g, bench)]
    lines = summary_lines(list(gs))
    if lines:
        md += ["Diverging series (their errors grow with the degree; clipped in the plots):", ""]
        md += [f"- {s}" for s in lines] + [""]
    return md + floor_lines(per_group)


def write_report(rows, outdir, *, overlay_degree: int = 8, title: str = "slaf-approx report",
                 meta: dict | None = None, kernel_table: str | None = None,
                 bench: Sequence[Mapping] | None = None, dtypes: Sequence[str] = REPORT_DTYPES,
                 cost=None) -> Path:
    """Write README.md, error_<target>.png and overlay_<target>.png into `outdir`; returns README's path.

    `bench`: records of a benchmark run (``slaf_approx.benchmarks.records``) for the Summary's kernel costs.
    `dtypes`: those whose achieved errors (the floor, :func:`~.data.floors`) are drawn and summarised.
    `cost`: timings of this run (``slaf_approx.benchmarks.accuracy.measure_costs``) for the "Accuracy against
    cost" section and its accuracy_<target>.png; without them the section is left out.
    Each file is written to a temporary file in `outdir` and moved into place, so a reader never sees a
    half-written file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = [normalise_row(r) for r in rows]
    rounded = [r for r in rows if is_rounded(r)]  # their own section; the rest compare float64 fits
    gs = groups(r for r in rows if not is_rounded(r))
    with one_thread():  # small tensors: a second torch thread only spin-waits (4x slower on a busy 2-core VM)
        fls = {g.key: floors(g, dtypes) for g in gs} if dtypes else {}
    tags = file_tags(gs)
    nrows = sum(len(g.rows) for g in gs)
    all_rows = [r for g in gs for r in g.rows]
    methods = sorted({r["method"] for r in all_rows}, key=lambda m: order((m, "", "", "")))
    bases = sorted({basis_label(r["basis"], r["variable"]) for r in all_rows})
    degrees = sorted({r["degree"] for r in all_rows})

    md = [f"# {title}", "", meta_line(meta), ""]
    if gs:
        md += [f"{nrows} fits: {len(gs)} target/interval group(s); methods {', '.join(methods)}; bases "
               f"{', '.join(bases)}; degrees {degree_list(degrees)}. Errors are measured on the fitting "
               "interval; numbers have 3 significant digits.", ""]
        md += summary(gs, bench, [(g, fls[g.key]) for g in gs if fls.get(g.key)])
    else:
        md += ["No results.", ""]

    for g in gs:
        tag = tags[g.key]
        md += [f"## {g.target} on {interval(g.lo, g.hi)}", "", f"**{group_title(g)}**", ""]
        md += target_lines(g) + [""]
        name = f"error_{tag}.png"
        save_figure(error_figure(g, g.target, floors=fls.get(g.key, ())), outdir / name)
        md += [f"![max and rms error against degree for {g.target}]({name})", ""]
        md += [f"- {s}" for s in findings(g)] + [""]
        note = theory_note(g)
        md += ["Max error by degree (theory columns first: Jackson's bound; Bernstein's asymptote where it "
               "applies; series with the same numbers share a column):" + (f" {note}" if note else ""), "",
               _summary_table(g)]
        if target_of(g) is not None and g.rows:
            name = f"overlay_{tag}.png"
            d, _ = pick_overlay(g, overlay_degree)
            save_figure(overlay_figure(g, g.target, overlay_degree), outdir / name)
            md += [f"Fits at degree {d} (chebyshev basis where present) and their signed errors:", "",
                   f"![degree-{d} fits of {g.target}]({name})", ""]

    md += _minimax_section(all_rows) + _rational_section(all_rows) + _gradient_section(gs)
    md += rounding_section(rounded, all_rows)
    if cost is not None and gs:
        lines, figs = cost_section(gs, cost, tags, floors=fls)
        for name, fig in figs.items():
            save_figure(fig, outdir / name)
        md += lines
    if all_rows:
        md += ["## Cost of the fits", "",
               "Wall-clock seconds per fit as recorded in the table (gradient fits of several degrees train "
               "together; each row holds its share).", "", cost_table(all_rows)]
    if kernel_table:
        md += ["## Cost of an SLAF layer", "",
               "Measured in this run (torch.utils.benchmark); the full suite is `slaf-approx bench` "
               "([kernels.md](kernels.md) when present).", "", kernel_table.strip(), ""]
    fit_md = outdir / "bench" / "fit.md"
    if fit_md.is_file():
        md += ["## Benchmarks", "",
               "From the last `tox -e bench` run (pytest-benchmark; budgets in `bench/budgets.toml`; "
               "[full table](bench/fit.md)):", "", fit_md.read_text().strip(), ""]

    readme = outdir / "README.md"
    atomic_write(readme, ("\n".join(md).rstrip() + "\n").encode("utf-8"))
    return readme


def _summary_table(g: Group) -> str:
    return summary_table(g, g.target)


def _minimax_section(all_rows) -> list[str]:
    cert = minimax_table(all_rows)
    if not cert:
        return []
    mm = [r for r in all_rows if r["method"] == "minimax"]
    bad = [r for r in mm if not r["converged"]]
    gaps = [(rel_gap(r), r) for r in mm if math.isfinite(rel_gap(r))]
    text = (f"All {len(mm)} minimax fits converged." if not bad else
            f"{len(bad)} of {len(mm)} minimax fits did not converge: "
            + "; ".join(f"{r['target']} {basis_label(r['basis'], r['variable'])} n = {r['degree']}"
                        for r in bad[:12]) + ("; …" if len(bad) > 12 else "") + ".")
    if gaps:
        gmax, r = max(gaps, key=lambda t: t[0])
        text += (f" Largest (E−h)/E: {fmt(gmax)} ({r['target']}, "
                 f"{basis_label(r['basis'], r['variable'])}, n = {r['degree']}).")
    return ["## Minimax certificates", "",
            "The Remez exchange's levelled error h and the measured max error E bracket the best error: "
            "h ≤ E_n(f) ≤ E. (E−h)/E is the certificate's relative gap; the last columns give the worst gap "
            "over the bases and the notes.", "", text, "", cert]


def _rational_section(all_rows) -> list[str]:
    rat = rational_table(all_rows)
    if not rat:
        return []
    ref = pau_reference(all_rows)
    return (["## Rational approximants", "",
             "P/Q of type (m, n) = (⌈n/2⌉, ⌊n/2⌋) has m + 1 + n = n + 1 parameters, as many as a degree-n "
             "polynomial, and is shown at degree n. Form pau: Q = 1 + |q₁v + … + qₙvⁿ| (Padé activation "
             "units, Molina et al., ICLR 2020); standard: Q = 1 + q₁v + … + qₙvⁿ. rational-minimax rows "
             "carry de la Vallée Poussin's certificate h ≤ E_mn(f) ≤ E (second table).", ""]
            + ([ref, ""] if ref else []) + [rat])


def _gradient_section(gs: Sequence[Group]) -> list[str]:
    grad = [(g, gradient_table(g, g.target)) for g in gs]
    grad = [(g, t) for g, t in grad if t]
    if not grad:
        return []
    md = ["## Gradient fits", "",
          "Gap = (loss − optimal loss) / optimal loss on the training points, the optimum being the "
          f"least-squares solution in the same basis. A gap above {STALL_GAP:g} means the optimizer stalled; "
          "a max error that grows with the degree means it diverged.", ""]
    for g, t in grad:
        md += [f"### {g.target} on {interval(g.lo, g.hi)}", ""]
        md += [f"- {s}" for s in gradient_findings(g)] + ["", t]
    return md
