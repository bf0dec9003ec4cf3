"""reports/kernels.md and its figures, pure functions of the records of saved runs; reports/bench/fit.md;
the plain-text summary `slaf-approx bench` prints.

Every table goes through slaf_approx._markdown.table; figures are matplotlib Figures written by
:func:`write_kernel_report` (atomic writes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from .._io import atomic_write, save_figure
from .._markdown import table
from .budgets import BudgetResult, budget_table
from .runs import one, raced, records, select
from .settings import COPIES, DEVICES, DTYPES, KERNEL_OPS, LAYER_OPS, MODES, PEER_OPS, size_label

DPI = 100
#: the ops drawn and tabled as lines of their own, in this order
_OP_ORDER = {
    "copy": 0,
    "copy_into": 0.5,
    "relu": 1,
    "gelu": 2,
    "silu": 3,
    "tanh": 4,
    "slaf": 5,
    "horner": 6,
    "recurrence": 7,
    "pau": 8,
}
_BACKEND_ORDER = {"torch": 0, "reference": 1, "fused": 2, "auto": 2.5, "triton": 3, "eager": 4, "compile": 5}


def _gbps(v) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _frac(v: float) -> str:
    return f"{v:.2f}×" if v >= 0.095 else f"{v:.2g}×"


def _ms(r) -> str:
    return f"{r['median'] * 1e3:.3g} ms" if r and r.get("median") else "–"


def _order(r: Mapping):
    return (
        _OP_ORDER.get(r["op"], 9),
        _BACKEND_ORDER.get(r.get("backend"), 9),
        r.get("variant") or "",
        r.get("degree") or 0,
    )


def subject(r: Mapping) -> str:
    """A benchmark's subject in words: 'slaf fused', 'horner compile', 'pau 5/4 eager', 'gelu'."""
    op, bk = r["op"], r.get("backend")
    if op == "slaf":
        return f"slaf {bk}"
    if op in PEER_OPS:
        v = f" {r['variant']}" if r.get("variant") else ""
        return f"{op}{v} {bk}"
    return {"copy": "copy (roofline)", "copy_into": "copy into a warm buffer"}.get(op, op)


def _cmp_time(r: Mapping):
    """The figure two benchmarks of one run are compared on: the paired-copy ratio where both have it."""
    return r.get("anchored") or r.get("median")


def kernel_sections(recs: Sequence[Mapping]) -> list[tuple[str, str]]:
    """The (device, dtype) pairs with kernel benchmarks, CPU first."""
    pairs = {(r["device"], r["dtype"]) for r in recs if r.get("op") in KERNEL_OPS and r.get("device")}
    return sorted(
        pairs,
        key=lambda p: (
            DEVICES.index(p[0]) if p[0] in DEVICES else 9,
            DTYPES.index(p[1]) if p[1] in DTYPES else 9,
            p,
        ),
    )


def throughput_table(recs, device: str, dtype: str, mode: str) -> str:
    """Markdown: per subject and degree, and size, median time · GB/s · fraction of the copy's GB/s."""
    rs = [
        r
        for r in select(recs, device=device, dtype=dtype, mode=mode)
        if r.get("op") in KERNEL_OPS
        and r["op"] not in LAYER_OPS
        and (mode == "forward" or r["op"] not in COPIES)
    ]
    if mode != "forward":  # the copy is the roofline of both modes
        rs += [r for op in COPIES for r in select(recs, device=device, dtype=dtype, op=op)]
    if not rs:
        return ""
    sizes = sorted({r["size"] for r in rs})
    keys = sorted({(subject(r), r.get("degree")): r for r in rs}.values(), key=_order)
    rows = []
    for k in keys:
        cells = []
        for s in sizes:
            r = one(
                rs,
                op=k["op"],
                backend=k.get("backend"),
                variant=k.get("variant"),
                degree=k.get("degree"),
                size=s,
            )
            if r is None or not r.get("median"):
                cells.append("–")
                continue
            frac = f" · {_frac(r['copy_fraction'])}" if r.get("copy_fraction") else ""
            cells.append(f"{_ms(r)} · {_gbps(r.get('gbps'))} GB/s{frac}")
        rows.append([subject(k), k.get("degree") or "", *cells])
    return table(["subject", "degree", *map(size_label, sizes)], rows, "llr" + "r" * (len(sizes) - 1))


def vs_peer(r: Mapping, p: Mapping) -> tuple[float, str]:
    """(SLAF record r's time over peer p's, how): "raced" where p was raced call for call against r's backend
    (the median of r's time over p's, from p's rival_samples), else "anchored" (the ratio of their
    paired-copy ratios, or of their medians)."""
    v = raced(r, p)
    return (v, "raced") if v is not None else (_cmp_time(r) / _cmp_time(p), "anchored")


def peer_ratios(recs, device: str, dtype: str) -> list[dict]:
    """Per SLAF (backend, degree, mode, size): its time over each peer's of the same degree, mode and size
    (vs_peer: raced call for call where the peer was raced against this backend), and the fastest peer's
    name and ratio."""
    out = []
    for r in select(recs, device=device, dtype=dtype, op="slaf"):
        peers = [
            p
            for p in select(
                recs, device=device, dtype=dtype, mode=r["mode"], size=r["size"], degree=r.get("degree")
            )
            if p["op"] in PEER_OPS and _cmp_time(p)
        ]
        if not peers or not _cmp_time(r):
            continue
        vs = {subject(p): vs_peer(r, p) for p in peers}
        ratios = {k: v for k, (v, _) in vs.items()}
        best = max(ratios, key=ratios.get)  # the fastest peer: SLAF time / its time is the largest
        out.append(
            {
                "backend": r["backend"],
                "degree": r["degree"],
                "mode": r["mode"],
                "size": r["size"],
                "ratios": ratios,
                "fastest": best,
                "vs_fastest": ratios[best],
                "how": vs[best][1],
            }
        )
    return out


def peer_table(recs, device: str, dtype: str) -> str:
    """Markdown: SLAF time / fastest peer's time (≤ 1: the SLAF wins), and which peer, per size."""
    pr = peer_ratios(recs, device, dtype)
    if not pr:
        return ""
    sizes = sorted({p["size"] for p in pr})
    keys = sorted(
        {(p["backend"], p["mode"], p["degree"]) for p in pr},
        key=lambda k: (_BACKEND_ORDER.get(k[0], 9), MODES.index(k[1]), k[2]),
    )
    rows = []
    for bk, mode, deg in keys:
        cells = []
        for s in sizes:
            p = [x for x in pr if (x["backend"], x["mode"], x["degree"], x["size"]) == (bk, mode, deg, s)]
            cells.append(f"{p[0]['vs_fastest']:.3g}× ({p[0]['fastest']})" if p else "–")
        rows.append([bk, mode, deg, *cells])
    return table(["SLAF backend", "mode", "degree", *map(size_label, sizes)], rows, "llr" + "r" * len(sizes))


def _subject_rows(rs, cell) -> tuple[list[int], list[list]]:
    """(sizes, rows): one row per subject, degree and mode of `rs` in report order, [subject, degree, mode,
    cell(r, size) for each size], r being that subject's record at the size (None where it did not run)."""
    sizes = sorted({r["size"] for r in rs})
    keys = sorted(
        {(subject(r), r.get("degree"), r["mode"]): r for r in rs}.values(),
        key=lambda r: (MODES.index(r["mode"]), _order(r)),
    )
    rows = []
    for k in keys:
        same = dict(op=k["op"], backend=k.get("backend"), variant=k.get("variant"), degree=k.get("degree"),
                    mode=k["mode"])
        rows.append([subject(k), k.get("degree") or "", k["mode"],
                     *(cell(one(rs, **same, size=s), s) for s in sizes)])
    return sizes, rows


def compile_table(recs, device: str, dtype: str) -> str:
    """Markdown: the first call of each compiled peer (the compilation), seconds, per size."""
    rs = [r for r in select(recs, device=device, dtype=dtype, backend="compile") if r.get("first_call_s")]
    if not rs:
        return ""
    sizes, rows = _subject_rows(rs, lambda r, s: f"{r['first_call_s']:.3g} s" if r else "–")
    return table(["peer", "degree", "mode", *map(size_label, sizes)], rows, "lrl" + "r" * len(sizes))


def memory_table(recs, device: str, dtype: str) -> str:
    """Markdown: peak memory (MiB) of one call and its ratio to GELU's in the same mode and size."""
    rs = [
        r
        for r in select(recs, device=device, dtype=dtype)
        if r.get("op") in KERNEL_OPS and r["op"] not in LAYER_OPS and r.get("peak_bytes") is not None
    ]
    if not rs:
        return ""

    def cell(r, s):
        if r is None:
            return "–"
        g = one(rs, op="gelu", mode=r["mode"], size=s)
        ratio = f" ({_frac(r['peak_bytes'] / g['peak_bytes'])} GELU)" if g and g["peak_bytes"] else ""
        return f"{r['peak_bytes'] / 2**20:.4g}{ratio}"

    sizes, rows = _subject_rows(rs, cell)
    return table(
        ["subject", "degree", "mode", *(f"{size_label(s)} (MiB)" for s in sizes)],
        rows,
        "lrl" + "r" * len(sizes),
    )


def layer_table(recs, device: str, dtype: str) -> str:
    rs = [r for r in select(recs, device=device, dtype=dtype) if r.get("op") in LAYER_OPS]
    if not rs:
        return ""
    rows = []
    for r in sorted(rs, key=lambda r: (MODES.index(r["mode"]), LAYER_OPS.index(r["op"]))):
        g = one(rs, op="gelu_layer", mode=r["mode"])
        ratio = f"{_cmp_time(r) / _cmp_time(g):.3g}×" if g and _cmp_time(g) and _cmp_time(r) else "–"
        peak = f"{r['peak_bytes'] / 2**20:.4g}" if r.get("peak_bytes") is not None else "–"
        name = "nn.GELU" if r["op"] == "gelu_layer" else f"SLAF (per channel, degree {r.get('degree')})"
        rows.append(
            [
                name,
                r.get("backend", ""),
                r["mode"],
                "×".join(map(str, r.get("shape") or ())),
                _ms(r),
                _gbps(r.get("gbps")),
                peak,
                ratio,
            ]
        )
    return table(
        ["layer", "backend", "mode", "shape", "median", "GB/s", "peak MiB", "time / GELU layer"],
        rows,
        "llllrrrr",
    )


_plain = FuncFormatter(lambda v, _: f"{v:g}")


def _log2_axis(ax, sizes):
    ax.set_xscale("log", base=2)
    if sizes:
        ax.set_xticks(sizes, [size_label(s) for s in sizes])


def _colours(n: int):
    from matplotlib import colormaps

    cm = colormaps["viridis"]
    return [cm(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]


def _columns(rs) -> list[tuple[str, str, str | None]]:
    keys = {
        (r["op"], r.get("backend"), r.get("variant"))
        for r in rs
        if r["op"] == "slaf" or (r["op"] in PEER_OPS and r.get("degree"))
    }
    return sorted(keys, key=lambda k: (_OP_ORDER.get(k[0], 9), _BACKEND_ORDER.get(k[1], 9), k[2] or ""))


def throughput_figure(recs, device: str, dtype: str) -> Figure:
    """GB/s against size: one column per SLAF backend and peer, one row per mode, one line per degree; the
    copy roofline (black, dashed) and GELU (grey, dotted) in each panel."""
    rs = select(recs, device=device, dtype=dtype)
    cols = _columns(rs)
    ncol = max(len(cols), 1)
    fig = Figure(figsize=(3.3 * ncol, 6.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, ncol, squeeze=False, sharex=True, sharey=True)
    degrees = sorted({r["degree"] for r in rs if r["op"] == "slaf" and r.get("degree")})
    cmap = dict(zip(degrees, _colours(len(degrees)), strict=True))
    sizes = sorted({r["size"] for r in rs if r.get("op") in ("slaf", *PEER_OPS, *COPIES)})
    copy = sorted(select(rs, op="copy"), key=lambda r: r["size"])
    for i, mode in enumerate(MODES):
        gelu = sorted(select(rs, op="gelu", mode=mode), key=lambda r: r["size"])
        for j, (op, bk, var) in enumerate(cols):
            ax = axes[i][j]
            for d in degrees:
                line = sorted(
                    (
                        r
                        for r in select(rs, op=op, backend=bk, mode=mode, degree=d)
                        if r.get("variant") == var and r.get("gbps")
                    ),
                    key=lambda r: r["size"],
                )
                if line:
                    ax.plot(
                        [r["size"] for r in line],
                        [r["gbps"] for r in line],
                        marker="o",
                        markersize=4,
                        color=cmap[d],
                        label=f"degree {d}",
                    )
            references = ((copy, dict(color="black", linestyle="--", marker="s", label="copy (roofline)")),
                          (gelu, dict(color="0.5", linestyle=":", marker="^", label="GELU")))
            for rows, style in references:
                if rows:
                    ax.plot([r["size"] for r in rows], [r.get("gbps") or np.nan for r in rows], markersize=3,
                            linewidth=1.4, **style)
            _log2_axis(ax, sizes)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(_plain)
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{subject({'op': op, 'backend': bk, 'variant': var})}\n{mode}", fontsize=9)
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
            if j == 0:
                ax.set_ylabel("GB/s (compulsory bytes / median)")
            if i == 1:
                ax.set_xlabel("elements")
    if cols:
        axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Throughput against size: {device}, {dtype}", fontsize=11)
    return fig


def peer_figure(recs, device: str, dtype: str) -> Figure:
    """SLAF time / the fastest peer's time against size, per SLAF backend (colour), mode (line style) and
    degree (marker); below 1 the SLAF wins."""
    pr = peer_ratios(recs, device, dtype)
    fig = Figure(figsize=(7.5, 4.8), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    backends = sorted({p["backend"] for p in pr}, key=lambda b: _BACKEND_ORDER.get(b, 9))
    colours = dict(
        zip(backends, ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple"], strict=False)
    )
    markers = dict(zip(sorted({p["degree"] for p in pr}), "os^Dv", strict=False))
    styles = {"forward": "--", "forward+backward": "-"}
    for bk in backends:
        for mode in MODES:
            for d, mk in markers.items():
                pts = sorted(
                    (p["size"], p["vs_fastest"])
                    for p in pr
                    if (p["backend"], p["mode"], p["degree"]) == (bk, mode, d)
                )
                if pts:
                    ax.plot(
                        *zip(*pts, strict=True),
                        marker=mk,
                        linestyle=styles[mode],
                        color=colours.get(bk),
                        alpha=0.85,
                        markersize=4,
                    )
    ax.axhline(1.0, color="black", linewidth=0.8)
    from matplotlib.lines import Line2D

    handles = (
        [Line2D([], [], color=colours[b], label=f"slaf {b}") for b in backends]
        + [Line2D([], [], color="0.3", linestyle=styles[m], label=m) for m in MODES]
        + [
            Line2D([], [], color="0.3", marker=mk, linestyle="none", label=f"degree {d}")
            for d, mk in markers.items()
        ]
    )
    _log2_axis(ax, sorted({p["size"] for p in pr}))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_plain)
    ax.yaxis.set_minor_formatter(_plain)
    ax.set_xlabel("elements")
    ax.set_ylabel("SLAF time / fastest peer's time (×)")
    ax.grid(True, which="both", alpha=0.3)
    if handles and pr:
        ax.legend(handles=handles, fontsize=7, ncols=2)
    ax.set_title(
        f"Against the fastest peer (eager or compiled Horner, recurrence, PAU): {device}, {dtype}", fontsize=9
    )
    return fig


def memory_figure(recs, device: str, dtype: str) -> Figure:
    """Peak memory of one call against degree at the largest size: one panel per mode, one colour per SLAF
    backend or peer; GELU and the copy as horizontal lines."""
    rs = [
        r
        for r in select(recs, device=device, dtype=dtype)
        if r.get("peak_bytes") is not None and r.get("op") in KERNEL_OPS and r["op"] not in LAYER_OPS
    ]
    size = max((r["size"] for r in rs), default=None)
    rs = select(rs, size=size)
    fig = Figure(figsize=(10, 4.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    cols = _columns(rs)
    colours = dict(zip(cols, _colours(len(cols)), strict=True))
    for ax, mode in zip(axes, MODES, strict=True):
        for key in cols:
            op, bk, var = key
            hits = select(rs, op=op, backend=bk, mode=mode)
            pts = sorted(
                (r["degree"], r["peak_bytes"] / 2**20)
                for r in hits
                if r.get("variant") == var and r.get("degree")
            )
            if pts:
                ax.plot(
                    *zip(*pts, strict=True),
                    marker="o",
                    color=colours[key],
                    alpha=0.85,
                    label=subject({"op": op, "backend": bk, "variant": var}),
                )
        for op, colour, ls in (("gelu", "0.3", "--"), ("copy", "black", ":")):
            r = one(rs, op=op, mode=mode) or (one(rs, op=op) if op == "copy" else None)
            if r:
                ax.axhline(
                    r["peak_bytes"] / 2**20,
                    color=colour,
                    linestyle=ls,
                    linewidth=1.2,
                    label="GELU" if op == "gelu" else "copy",
                )
        ax.set_yscale("symlog", linthresh=1.0)  # symlog: a call that allocates nothing is drawn at 0
        ax.yaxis.set_major_formatter(_plain)
        ax.set_xlabel("degree")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(mode, fontsize=10)
    axes[0].set_ylabel("peak memory of one call (MiB)")
    mib = [r["peak_bytes"] / 2**20 for r in rs]
    if mib:  # both panels' values, set after both are drawn (shared y: the last autoscale would cut one)
        axes[0].set_ylim(0, max(mib) * 2)
    if rs:
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Peak memory: {device}, {dtype}, {size_label(size) if size else '–'} elements", fontsize=10)
    return fig


def _machine(run: Mapping, device: str) -> str:
    mi = run.get("machine_info") or {}
    if device == "cuda":
        name = mi.get("cuda_device", "CUDA device")
        return f"{name} (CUDA {mi.get('cuda', '?')}, triton {mi.get('triton', '?')})"
    cpu = (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or "CPU"
    return f"{cpu}, {mi.get('torch_threads', '?')} torch threads, host {mi.get('node', '?')}"


def _torch(run: Mapping) -> str:
    return (run.get("machine_info") or {}).get("torch", "?")


def _date(run: Mapping) -> str:
    d = run.get("datetime")
    try:
        return datetime.fromisoformat(d).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return str(d or "date not recorded")


GPU_NOT_MEASURED = (
    "GPU figures: **not measured**. No GPU run was supplied; this report gives no "
    "estimate. On a machine with an NVIDIA GPU run `bench/gpu_check.sh reports/gpu`, then "
    "`slaf-approx bench --report-only reports/bench/run-cpu.json reports/gpu/kernels.json`."
)

METHOD_NOTES = [
    "Timing: pytest-benchmark, in rounds. Each round first runs a copy of a tensor of the same size into a "
    "buffer written before (the anchor: memory bandwidth alone, no allocation), timed, then the benchmark, "
    "timed; the median is the benchmark's, and the per-round ratio "
    "to its paired copy is kept as the benchmark's samples. Ratios between benchmarks of one run (the peer "
    "table, the budgets) divide these paired ratios, so the machine's load, which drifts between rounds, "
    "cancels. CUDA: a `torch.cuda.synchronize()` inside each timed call, with warm-up rounds.",
    "Races: after its rounds, each peer is timed in pairs of calls with the SLAF backend `auto` picks "
    "(same workload, back to back, the order alternating from pair to pair, for half of the benchmark's "
    "time budget). The peer table's ratios for that backend are the median of these pairs' ratios: two "
    "subjects timed in the same moment see the same machine, which two ratios to an anchor timed in "
    "different rounds do not promise (at 2^24 the anchor's own time moved by 20% with its subject).",
    "Fitting engine: each round is paired the same way with a fixed job timed just before it: our lstsq "
    "with numpy's fit of the same points, numpy's fit with a sort of 2^20 doubles, each Remez fit with an "
    "interpreter-bound loop of small numpy calls (as an exchange is), which follows the fit's speed as the "
    "machine's state moves where the sort did not.",
    "Compile time: the first call of a `torch.compile` peer, timed on its own (each peer is compiled after "
    "`torch._dynamo.reset()`, with inductor's on-disk cache as it stands), never in the steady-state "
    "figures.",
    "Peers: `horner` is sum a_k x^k by Horner's rule (eager, or `torch.compile(fullgraph=True)`); "
    "`recurrence` is the SLAF's definition (slaf_reference, the three-term recurrence) compiled; `pau` is "
    "P(x) / (1 + |b_1 x + ... + b_k x^k|), PAU's safe denominator with |.| around the whole sum, of type "
    "(5, 4) or of the type with the polynomial's parameter count (degree n: (n - n//2, n//2)). All have "
    "learnable coefficients (`nn.Parameter`): forward+backward computes their gradients.",
    "Bytes moved: the compulsory traffic, 2·n·s forward (read x, write y), 5·n·s forward+backward (also read "
    "x and grad y, write grad x), 2·n·s for the copy. GB/s = bytes / median; × copy = that over the copy's "
    "GB/s at the same size, dtype and device, i.e. the fraction of the roofline.",
    "Forward runs under `torch.no_grad()`; forward+backward is y = f(x) and `torch.autograd.grad` against x "
    "and the coefficients.",
    "Peak memory: of one call (the second, after the first call), beyond what was held before it, to the "
    "byte. CUDA: the caching allocator's `max_memory_allocated`. CPU: the peak of the running sum of torch's "
    "allocations and frees during the call, from the profiler's memory events.",
    "The SLAF is the Chebyshev basis on [-3, 3] (every basis is one three-term recurrence, so they cost the "
    "same). Ratios between benchmarks of the same run hold across machines; absolute times and GB/s do not.",
]


def kernel_report(
    runs: Sequence[tuple[str, Mapping]],
    results: Sequence[BudgetResult] = (),
    *,
    budgets_source: str = "budgets.toml",
    comparison: str | None = None,
    history: str | None = None,
) -> tuple[str, dict[str, Figure]]:
    """(Markdown of kernels.md, {png name: Figure}) from (source label, pytest-benchmark JSON) pairs. Each
    (device, dtype) found gets its tables and figures; without a CUDA run the GPU section says the figures
    are not measured."""
    md = [
        "# Kernel benchmarks",
        "",
        "What an SLAF costs against what a user would write instead (eager and compiled Horner polynomials, "
        "the compiled recurrence, PAU rationals) and against the activations it replaces, beside a copy of "
        "the same tensor (the roofline), forward and forward+backward; then a real layer.",
        "",
    ]
    md += (
        ["Runs: " + "; ".join(f"`{src}` ({_date(run)}, torch {_torch(run)})" for src, run in runs) + ".", ""]
        if runs
        else ["No runs.", ""]
    )
    figures: dict[str, Figure] = {}
    budgets = [r for r in results if not r.budget.goal]
    goals = [r for r in results if r.budget.goal]
    if budgets:
        md += [
            "## Budgets",
            "",
            f"From `{budgets_source}`, checked by `slaf-approx bench --check`: ratios "
            "within one run, in interleaved rounds.",
            "",
            budget_table(budgets),
        ]
    if goals:
        md += [
            "## Goals",
            "",
            "Targets not enforced by the check (not met yet, or too noisy on the reference "
            "machine to hold in every run).",
            "",
            budget_table(goals),
        ]
    if comparison:
        md += ["## Against the saved run", "", comparison]
    if history:
        md += ["## History", "", history]
    have_gpu = False
    for src, run in runs:
        recs = records(run)
        for device, dtype in kernel_sections(recs):
            have_gpu |= device == "cuda"
            tag = f"{device}_{dtype}"
            md += [
                f"## {'CPU' if device == 'cpu' else 'GPU'}: {dtype}",
                "",
                f"**Device:** {_machine(run, device)}. **dtype:** {dtype}. **Date:** {_date(run)}. "
                f"**torch** {_torch(run)}. Source `{src}`.",
                "",
            ]
            t = peer_table(recs, device, dtype)
            if t:
                figures[f"kernels_peers_{tag}.png"] = peer_figure(recs, device, dtype)
                md += [
                    "### Against the peers",
                    "",
                    "SLAF time / the fastest peer's time at the same degree, "
                    "size and mode (≤ 1: the SLAF is faster), and which peer that is. For the backend "
                    "`auto` picks, each peer is raced against it call for call (pairs of calls in "
                    "alternating order; the median of the pairs' ratios); the other backends divide "
                    "paired-copy ratios.",
                    "",
                    t,
                    f"![SLAF against the fastest peer](kernels_peers_{tag}.png)",
                    "",
                ]
            md += [
                "### Throughput",
                "",
                "Median time · GB/s · fraction of the copy's GB/s (the roofline), per size in elements.",
                "",
            ]
            for mode in MODES:
                t = throughput_table(recs, device, dtype, mode)
                if t:
                    md += [f"{mode}:", "", t]
            figures[f"kernels_throughput_{tag}.png"] = throughput_figure(recs, device, dtype)
            md += [f"![throughput against size, {device} {dtype}](kernels_throughput_{tag}.png)", ""]
            t = compile_table(recs, device, dtype)
            if t:
                md += [
                    "### Compile time",
                    "",
                    "The first call of each compiled peer (tracing and code "
                    "generation), kept out of the figures above.",
                    "",
                    t,
                ]
            t = memory_table(recs, device, dtype)
            if t:
                figures[f"kernels_memory_{tag}.png"] = memory_figure(recs, device, dtype)
                md += [
                    "### Peak memory",
                    "",
                    "MiB of one call (and its ratio to GELU's in the same mode and size); see Method.",
                    "",
                    t,
                    f"![peak memory against degree](kernels_memory_{tag}.png)",
                    "",
                ]
            t = layer_table(recs, device, dtype)
            if t:
                md += [
                    "### A real layer",
                    "",
                    "Per-channel SLAF (initialised as GELU's least-squares fit) "
                    "beside nn.GELU on a (batch, channels, height, width) activation.",
                    "",
                    t,
                ]
    if not have_gpu:
        md += ["## GPU", "", GPU_NOT_MEASURED, ""]
    md += ["## Method", ""] + [f"- {m}" for m in METHOD_NOTES] + [""]
    return "\n".join(md).rstrip() + "\n", figures


def fit_markdown(run: Mapping, results: Sequence[BudgetResult]) -> str:
    """reports/bench/fit.md: the fitting-engine benchmarks of a run and the budgets table (embedded in
    reports/README.md by report.write_report)."""
    mi = run.get("machine_info") or {}
    cpu = (mi.get("cpu") or {}).get("brand_raw", mi.get("processor", "?"))
    recs = [r for r in records(run) if r.get("op") is None]
    remez = [r for r in recs if r["test"] == "test_remez"]
    out = [
        f"Machine: {mi.get('node', '?')} ({cpu}), python {mi.get('python_version', '?')}; "
        f"run {_date(run)}. Kernel benchmarks: reports/kernels.md.",
        "",
        table(
            ["benchmark", "median", "rounds"],
            [[r["name"], _ms(r), r.get("rounds") or "–"] for r in recs if r["test"] != "test_remez"],
            "lrr",
        ),
    ]
    if remez:
        degrees = sorted({r["degree"] for r in remez})
        rows = []
        for t in dict.fromkeys(r["target"] for r in remez):
            cells = []
            for d in degrees:
                r = one(remez, target=t, degree=d)
                cells.append(f"{_ms(r)} ({r.get('iterations', '?')} iterations)" if r else "–")
            rows.append([t, *cells])
        out += [
            "One Remez fit on [-3, 3] by degree (Chebyshev basis): median time and exchange iterations.",
            "",
            table(["target", *(f"n = {d}" for d in degrees)], rows, "l" + "r" * len(degrees)),
        ]
    return "\n".join(out) + "\n" + budget_table(results)


def write_figures_and_text(outdir, md: str, figures: Mapping[str, Figure], name: str = "kernels.md") -> Path:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for fname, fig in figures.items():
        save_figure(fig, outdir / fname, DPI)
    path = outdir / name
    atomic_write(path, md.encode("utf-8"))
    return path


def write_kernel_report(
    runs: Sequence[tuple[str, Mapping]], outdir, results: Sequence[BudgetResult] = (), **kwargs
) -> Path:
    """Write kernels.md and its PNGs into `outdir` (each through a temporary file and os.replace)."""
    md, figures = kernel_report(runs, results, **kwargs)
    return write_figures_and_text(outdir, md, figures)


def write_text(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))
    return path


def short_summary(run: Mapping, results: Sequence[BudgetResult] = ()) -> str:
    """Plain text, a few lines per (device, dtype): at the largest size, each SLAF backend and degree's
    median, GB/s, fraction of the copy and time over the fastest peer's; then the budgets measured."""
    recs = records(run)
    lines = []
    for device, dtype in kernel_sections(recs):
        rs = select(recs, device=device, dtype=dtype)
        sizes = [r["size"] for r in rs if r.get("op") == "slaf"]
        if not sizes:
            continue
        size = max(sizes)
        copy = one(rs, op="copy", size=size)
        lines.append(
            f"{device} {dtype}, {size_label(size)} elements (copy: "
            f"{_gbps(copy.get('gbps')) if copy else '–'} GB/s)"
        )
        lines.append(
            f"  {'backend':<10} {'deg':>3} {'mode':<17} {'median ms':>10} {'GB/s':>8} {'x copy':>7} "
            f"{'/ best peer':>12}"
        )
        pr = {
            (p["backend"], p["degree"], p["mode"]): p
            for p in peer_ratios(rs, device, dtype)
            if p["size"] == size
        }
        for r in sorted(select(rs, op="slaf", size=size), key=lambda r: (_order(r), MODES.index(r["mode"]))):
            if not r.get("median"):
                continue
            frac = f"{r['copy_fraction']:.2f}" if r.get("copy_fraction") else "–"
            p = pr.get((r["backend"], r["degree"], r["mode"]))
            vs = f"{p['vs_fastest']:.3g}" if p else "–"
            lines.append(
                f"  {r['backend']:<10} {r['degree']:>3} {r['mode']:<17} {r['median'] * 1e3:>10.4g} "
                f"{r['gbps']:>8.4g} {frac:>7} {vs:>12}"
            )
    measured = [r for r in results if r.status != "not measured"]
    if measured:
        lines.append("budgets and goals:")
        for r in measured:
            value = "–" if r.value is None else f"{r.value:.3g}"
            lines.append(f"  {r.budget.name:<34} {value:>8} {r.budget.limit():<12} {r.status}")
    return "\n".join(lines) + "\n" if lines else "no kernel benchmarks in this run\n"
