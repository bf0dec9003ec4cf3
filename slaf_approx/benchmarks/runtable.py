"""The short kernel-cost table `slaf-approx run` writes into reports/README.md: the SLAF backends beside
their peers, GELU and the copy at one size, timed by torch.utils.benchmark (a few seconds)."""

from __future__ import annotations

from .._markdown import table
from .runs import one
from .settings import MODES, size_label
from .workloads import bytes_moved, kernel_fn, make_input

#: (op, backend) rows besides the SLAF backends: the copy, GELU and the peers, eager and compiled
PEER_ROWS = (
    ("copy", "torch"),
    ("gelu", "torch"),
    ("horner", "eager"),
    ("horner", "compile"),
    ("recurrence", "compile"),
    ("pau", "eager"),
    ("pau", "compile"),
)


def quick_kernel_table(size: int = 2**20, degree: int = 8, min_run_time: float = 0.1, peers=PEER_ROWS) -> str:
    """Markdown: each available SLAF backend and each peer on CPU float32 at one size, forward and
    forward+backward, median of torch.utils.benchmark's blocked_autorange (all torch threads); the PAU
    peers are of the type with the polynomial's parameter count. Compiled peers are compiled (and their
    compile time shown) before timing."""
    import time

    import torch
    from torch.utils.benchmark import Timer

    from .settings import BenchSettings, slaf_backends

    x, gy = make_input(size, "float32", "cpu")
    cases = (
        list(peers[:2]) + [("slaf", b) for b in slaf_backends(BenchSettings(), "float32")] + list(peers[2:])
    )
    rows = []
    for mode in MODES:
        for op, bk in cases:
            if op == "copy" and mode != "forward":
                continue
            deg = degree if op not in ("copy", "gelu") else None
            variant = "matched" if op == "pau" else None
            fn = kernel_fn(
                op, mode, x, gy, backend=None if op in ("copy", "gelu") else bk, degree=deg, variant=variant
            )
            t0 = time.perf_counter()
            fn()
            first = time.perf_counter() - t0
            t = (
                Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
                .blocked_autorange(min_run_time=min_run_time)
                .median
            )
            rows.append(
                {
                    "op": op,
                    "backend": bk,
                    "mode": mode,
                    "degree": deg,
                    "median": t,
                    "first": first,
                    "gbps": bytes_moved(size, "float32", mode, op) / t / 1e9,
                }
            )
    copy = one(rows, op="copy")
    body = []
    for r in rows:
        g = one(rows, op="gelu", mode=r["mode"])
        name = f"{r['op']} (degree {r['degree']})" if r["degree"] else r["op"]
        body.append(
            [
                name,
                r["backend"],
                r["mode"],
                f"{r['median'] * 1e3:.3g} ms",
                f"{r['gbps']:.3g}",
                f"{r['gbps'] / copy['gbps']:.2f}×" if copy else "–",
                f"{r['median'] / g['median']:.3g}×" if g else "–",
                f"{r['first']:.3g} s" if r["backend"] == "compile" else "",
            ]
        )
    head = (
        f"CPU, float32, {size_label(size)} elements, degree {degree} (SLAF: Chebyshev; PAU: the type with "
        f"the same parameter count), {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
        "medians of torch.utils.benchmark, compile time (the first call) apart. The full suite and its "
        "budgets: `slaf-approx bench` (reports/kernels.md).\n\n"
    )
    return head + table(
        ["op", "backend", "mode", "median", "GB/s", "× copy", "× GELU time", "compile"], body, "lllrrrrr"
    )
