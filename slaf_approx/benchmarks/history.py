"""History: each benchmark's figures across the saved runs of this machine, in commit order (as asv draws
it), as one PNG and tables: the timed quantity (a record key: "median" seconds, "anchored" time over the
paired copy, or any other number a saved run's records carry) and the instructions counted under valgrind
(the counts runs that `slaf-approx bench --counts` keeps, see :func:`.counts.save_history`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from .._markdown import table
from .runs import commit_order, records

#: the table shows the newest runs only, the figure all of them; the figure names the NAMED that moved most
TABLE_RUNS = 8
NAMED = 7
INSTRUCTIONS = "instructions"
QUANTITY_LABEL = {"median": "median time (s)", "anchored": "time / paired copy time",
                  INSTRUCTIONS: "instructions (valgrind)"}


def _commit(run: Mapping) -> str | None:
    return (run.get("slaf_approx") or {}).get("commit") or (run.get("commit_info") or {}).get("id")


def ordered(runs: Sequence[Mapping], order: Mapping[str, int] | None = None) -> list[Mapping]:
    """The runs in commit order (position of their commit in HEAD's history; unknown commits last), ties
    and unknowns by date."""
    order = commit_order() if order is None else order
    return sorted(runs, key=lambda r: (order.get(_commit(r) or "", math.inf), str(r.get("datetime", ""))))


def _per_run(runs: Sequence[Mapping], quantity: str) -> list[dict]:
    """Benchmark name -> value, one dict per run: a counts run (format "slaf-approx counts") gives its
    instructions whatever `quantity`, a timed run its records' `quantity`."""
    out = []
    for run in runs:
        if str(run.get("format", "")).startswith("slaf-approx counts"):
            out.append({n: e.get("instructions") for n, e in run["benchmarks"].items()})
        else:
            out.append({r["name"]: r.get(quantity) for r in records(run)})
    return out


def series(runs: Sequence[Mapping], quantity: str = "median") -> dict[str, list[float | None]]:
    """Benchmark name -> its `quantity` in each run (None where absent); instructions for counts runs."""
    per_run = _per_run(runs, quantity)
    names = list(dict.fromkeys(n for pr in per_run for n in pr))
    out = {}
    for n in names:
        vals = [pr.get(n) for pr in per_run]
        vals = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in vals]
        if any(v is not None for v in vals):
            out[n] = vals
    return out


def _label(run: Mapping) -> str:
    c = _commit(run)
    return c[:7] if c else str(run.get("datetime", "?"))[:16]


def history_table(runs: Sequence[Mapping], quantity: str = "median") -> str:
    s = series(runs, quantity)
    if not s:
        return f"No saved run has the quantity {quantity!r}.\n"
    shown = list(range(len(runs)))[-TABLE_RUNS:]
    unit = "ms" if quantity == "median" else ""

    def cell(v):
        if v is None:
            return "–"
        if quantity == INSTRUCTIONS:
            return f"{v:,.0f}".replace(",", " ")
        return f"{v * 1e3:.3g}" if unit == "ms" else f"{v:.4g}"

    rows = [[n, *(cell(vals[i]) for i in shown)] for n, vals in s.items()]
    head = ["benchmark", *(f"{_label(runs[i])}" + (f" ({unit})" if unit else "") for i in shown)]
    return (
        f"{QUANTITY_LABEL.get(quantity, quantity)} in the {len(shown)} newest of {len(runs)} saved runs, "
        "oldest commit first.\n\n" + table(head, rows, "l" + "r" * len(shown))
    )


def history_figure(runs: Sequence[Mapping], quantity: str = "median") -> Figure:
    """Each benchmark's quantity over its value in the first run that has it, against the run (commit).
    The NAMED benchmarks that moved most (largest |last / first - 1|) are coloured and named in the legend;
    the others are thin grey lines."""
    fig = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    _draw(fig.subplots(), runs, quantity)
    return fig


def _draw(ax, runs: Sequence[Mapping], quantity: str) -> None:
    s = series(runs, quantity)
    from matplotlib import colormaps

    lines = {}
    for name, vals in s.items():
        first = next(v for v in vals if v is not None)
        pts = [(k, v / first) for k, v in enumerate(vals) if v is not None and first]
        if pts:
            lines[name] = pts
    moved = sorted(lines, key=lambda n: -abs(lines[n][-1][1] - 1.0))[:NAMED]
    cm = colormaps["tab10"]
    for name, pts in lines.items():
        if name not in moved:
            ax.plot(*zip(*pts, strict=True), linewidth=0.6, color="0.75")
    for i, name in enumerate(moved):
        ax.plot(
            *zip(*lines[name], strict=True), marker="o", markersize=3, linewidth=1.3, color=cm(i), label=name
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(runs)), [_label(r) for r in runs], rotation=45, fontsize=7)
    ax.set_xlabel("saved run (commit), oldest first")
    ax.set_ylabel(f"{QUANTITY_LABEL.get(quantity, quantity)} / first run's")
    ax.grid(True, alpha=0.3)
    if moved:
        ax.legend(
            fontsize=6,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title=f"moved most ({len(moved)} of {len(lines)})",
            title_fontsize=7,
        )
    ax.set_title(f"{QUANTITY_LABEL.get(quantity, quantity)}: {len(lines)} benchmarks across {len(runs)} "
                 "saved runs", fontsize=10)


def count_runs(storage) -> list[dict]:
    """The counts runs kept under `storage` (STORAGE/KEY/runs/*.json) of the newest key (one machine and
    tool chain: counts of other tools do not compare), in commit order."""
    files = sorted(Path(storage).glob("*/runs/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return []
    key = files[-1].parent.parent
    docs = [json.loads(p.read_text()) for p in sorted((key / "runs").glob("[0-9][0-9][0-9][0-9]_*.json"))]
    return ordered(docs)


def history_markdown(timed: Sequence[Mapping], counted: Sequence[Mapping], quantity: str = "median",
                     level: int = 2) -> tuple[str, Figure]:
    """The history tables (time, then instructions) under headings of `level`, and one figure with a
    panel for each that has runs."""
    parts = [(runs, q) for runs, q in ((timed, quantity), (counted, INSTRUCTIONS)) if runs]
    text = "\n".join(f"{'#' * level} {QUANTITY_LABEL.get(q, q).capitalize()}\n\n{history_table(runs, q)}"
                     for runs, q in parts)
    fig = Figure(figsize=(10, 4.5 * max(1, len(parts))), dpi=100, layout="constrained")
    axes = fig.subplots(max(1, len(parts)), 1, squeeze=False)[:, 0]
    for ax, (runs, q) in zip(axes, parts, strict=False):
        _draw(ax, runs, q)
    return text, fig
