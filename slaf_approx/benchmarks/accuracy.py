"""Same-run forward+backward timings for the report's "Accuracy against cost": the SLAF op by degree on the
default backend ("auto"), the PAU-style P/Q by type, and each target's native torch activation, at one size.

Every callable comes from :mod:`.workloads` (the benchmarks' own workloads: gradients for x and for the
learnable coefficients, grad y given), so what is timed here is what ``slaf-approx bench`` times. They are
timed in interleaved rounds: each round calls every workload REPEAT times, in the same order, so that a burst
of load on a shared machine slows all of them alike instead of one; a workload's figure is the minimum over
its calls (the least disturbed one), with THREADS torch threads.
The report divides each figure by the native activation's, measured in the same rounds.

Rounds continue until ``budget_s`` seconds have passed, at least ``min_rounds`` and at most ``max_rounds``,
so that ``slaf-approx run`` stays fast on a loaded machine and uses its rounds on a quiet one.

torch is imported inside the functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from .workloads import kernel_fn, make_input, native_fn

#: the size timed: 2^16 float32 elements on the CPU (a layer's activation of modest size; the fixed cost
#: per call is part of what a user pays)
COST_SIZE = 2**16
COST_DTYPE = "float32"
MIN_ROUNDS, MAX_ROUNDS, BUDGET_S = 3, 40, 8.0
#: calls per workload in a round, back to back: the first after another workload's large allocations is
#: slower (caches, allocator), and a short native op needs several tries for one undisturbed call
REPEAT = 3
#: torch threads while timing: one, so that the figures are per core and do not swing with the machine's
#: load (two threads on a busy 2-core VM spin-wait for each other: 30x slower rounds, ratios off by 2x)
THREADS = 1


@dataclass(frozen=True)
class CostTimings:
    """Minimum forward+backward seconds per workload, measured in the same interleaved rounds (`rounds`
    rounds of REPEAT calls each).

    Keys of `seconds`: ("slaf", degree), ("pau", degree) (the PAU of type (m, n) = (degree - degree // 2,
    degree // 2), as many parameters as the degree's polynomial), ("native", target name)."""

    seconds: Mapping[tuple, float]
    size: int
    dtype: str
    device: str
    rounds: int
    threads: int
    backend: str  # the SLAF backend "auto" resolved to
    torch: str = ""
    natives: Mapping[str, str] = field(default_factory=dict)  # target name -> the native op's name
    repeat: int = REPEAT  # calls per workload in each round

    def ratio(self, key: tuple, target: str) -> float | None:
        """key's time over the native activation of `target`; None when either was not timed."""
        t, n = self.seconds.get(key), self.seconds.get(("native", target))
        return t / n if t is not None and n else None


def interleaved_minima(fns: Mapping[Hashable, Callable[[], object]], *, min_rounds: int = MIN_ROUNDS,
                       max_rounds: int = MAX_ROUNDS, budget_s: float = BUDGET_S, repeat: int = REPEAT,
                       sync: Callable[[], object] | None = None) -> tuple[dict, int]:
    """({key: minimum seconds of one call over the rounds}, rounds): each round times every callable
    `repeat` times back to back, in order (time.perf_counter around each call; `sync`, e.g.
    torch.cuda.synchronize, after it), after one untimed warm-up call each (the first call builds kernels
    and allocates)."""
    if not 1 <= min_rounds <= max_rounds or repeat < 1:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds and repeat >= 1, got {min_rounds}, "
                         f"{max_rounds} and {repeat}")
    for f in fns.values():
        f()
    if sync:
        sync()
    best = {k: math.inf for k in fns}
    clock = time.perf_counter
    rounds, t0 = 0, clock()
    while rounds < max_rounds and (rounds < min_rounds or clock() - t0 < budget_s):
        for k, f in fns.items():
            for _ in range(repeat):
                t = clock()
                f()
                if sync:
                    sync()
                best[k] = min(best[k], clock() - t)
        rounds += 1
    return best, rounds


def native_ops(targets: Iterable) -> dict[str, tuple[str, Callable]]:
    """target name -> (op name, torch function of x) for the catalogue targets torch computes by one op:
    the table :mod:`slaf_approx.precision` measures the native errors with; the others are left out."""
    from ..precision import native_op

    out = {}
    for t in targets:
        hit = native_op(t)
        if hit is not None:
            out[t if isinstance(t, str) else t.name] = hit
    return out


def measure_costs(targets: Iterable, degrees: Iterable[int], pau_degrees: Iterable[int], *,
                  size: int = COST_SIZE, dtype: str = COST_DTYPE, device: str = "cpu",
                  min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS,
                  budget_s: float = BUDGET_S, repeat: int = REPEAT, threads: int = THREADS) -> CostTimings:
    """Forward+backward of the SLAF op at each degree (backend "auto"), the PAU formula (eager) of the type
    with each of `pau_degrees` + 1 parameters (degree >= 2: a denominator), and each target's native
    activation, all in the same interleaved rounds, with `threads` torch threads (the fused kernel follows
    torch's count)."""
    import torch

    from ..kernels import resolve_backend

    low = [d for d in pau_degrees if d < 2]
    if low:
        raise ValueError(f"a PAU needs a denominator: degree >= 2, got {low[0]}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    mode = "forward+backward"
    x, gy = make_input(size, dtype, device)
    fns: dict[tuple, Callable] = {}
    for d in sorted(set(degrees)):
        fns[("slaf", d)] = kernel_fn("slaf", mode, x, gy, backend="auto", degree=d)
    for d in sorted(set(pau_degrees)):
        fns[("pau", d)] = kernel_fn("pau", mode, x, gy, backend="eager", degree=d, variant="matched")
    natives = native_ops(targets)
    for name, (_, f) in natives.items():
        fns[("native", name)] = native_fn(f, mode, x, gy)
    sync = torch.cuda.synchronize if device == "cuda" else None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seconds, rounds = interleaved_minima(fns, min_rounds=min_rounds, max_rounds=max_rounds,
                                             budget_s=budget_s, repeat=repeat, sync=sync)
    finally:
        torch.set_num_threads(before)
    return CostTimings(seconds, size, dtype, device, rounds, threads,
                       resolve_backend("auto", x), torch.__version__,
                       {name: op for name, (op, _) in natives.items()}, repeat)
