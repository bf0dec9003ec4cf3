"""The learning experiments: do self-learnable activations help small networks learn?

Claim under test (Goyal, Goyal and Lall, arXiv 1906.09529): SLAF, alone or with standard activations,
improves accuracy with few extra parameters. On three small tasks that run offline on CPU — two spirals
(generated), random cubic polynomials (generated), scikit-learn's bundled 8x8 digits — the same MLP is
trained with five activation variants, the same optimiser (Adam), the same budget and the same seeds:

* ``relu``            ReLU on every hidden layer (the baseline);
* ``slaf-power``      SLAF in the power basis of the raw x, the paper's form (identity start);
* ``slaf-normalised`` :class:`~slaf_approx.nn.NormalisedSLAF`, each power batch-normalised before it is
  weighted, the authors' stabilised form (w_1 = 1 start);
* ``slaf-chebyshev``  SLAF in the Chebyshev basis on [-3, 3] (identity start);
* ``hybrid``          ReLU on every hidden layer, the last one's ReLU followed by a Chebyshev SLAF with
  identity start, so the network starts as the ReLU network.

SLAF coefficients are shared per layer (degree + 1 parameters per layer). :func:`run_paper` runs the cross
product and writes ``paper.md`` with the tables, the findings computed from the numbers, and PNG figures of
the learned activation shapes and of the training curves. Tasks and variants are entries of the registries
:data:`TASKS` and :data:`VARIANTS`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ._io import atomic_write, save_figure
from ._markdown import table
from .bases import check_degree
from .nn import SLAF, NormalisedSLAF

DEGREE = 3
#: the degrees of a run: the first is the main comparison (and the figures); the others test stability
DEGREES = (3, 8)
INTERVAL = (-3.0, 3.0)
#: the SLAF kernel backend of the experiments ("auto": the fused C kernel on CPU where it builds)
BACKEND = "auto"
#: a quick run (tests, smoke checks) trains this fraction of each task's epochs
QUICK_FRACTION = 0.2
#: the fewest seeds paired with ReLU for a verdict (with two, one tied pair already makes the std 0)
MIN_PAIRS = 3


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]


def _tensors(xtr, ytr, xte, yte, classes: bool) -> Data:
    ydt = torch.long if classes else torch.float32
    return Data(torch.as_tensor(xtr, dtype=torch.float32), torch.as_tensor(ytr, dtype=ydt),
                torch.as_tensor(xte, dtype=torch.float32), torch.as_tensor(yte, dtype=ydt))


def two_spirals(seed: int, n_per_class: int = 400, noise: float = 0.1, turns: float = 2.5) -> Data:
    """Two interleaved spirals (class 1 is class 0 turned by pi), radius up to 2, Gaussian noise; every other
    point of each class goes to the test half, so both halves hold n_per_class / 2 points per class."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class))  # uniform density along the arm
    theta = 2 * np.pi * turns * t
    arm = np.stack([np.cos(theta), np.sin(theta)], axis=1) * (2.0 * t)[:, None]
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    test = np.zeros(2 * n_per_class, dtype=bool)
    test[1::2] = True
    return _tensors(x[~test], y[~test], x[test], y[test], classes=True)


def _monomials(n_inputs: int, degree: int) -> list[tuple[int, ...]]:
    """Exponent tuples of every monomial of total degree <= degree, in a fixed order."""
    out = [()]
    for _ in range(n_inputs):
        out = [e + (k,) for e in out for k in range(degree + 1) if sum(e) + k <= degree]
    return out


def random_cubic(seed: int, n_inputs: int = 3, n_train: int = 1000, n_test: int = 1000) -> Data:
    """A random cubic polynomial in `n_inputs` variables (all 20 monomials of degree <= 3 for 3 inputs,
    N(0, 1) coefficients) on x ~ U[-1, 1]^n; targets standardised with the training mean and std, no
    noise."""
    rng = np.random.default_rng(seed)
    exps = np.array(_monomials(n_inputs, 3))
    coef = rng.standard_normal(len(exps))
    x = rng.uniform(-1.0, 1.0, (n_train + n_test, n_inputs))
    y = (x[:, None, :] ** exps[None]).prod(axis=2) @ coef
    mu, sd = y[:n_train].mean(), y[:n_train].std()
    y = (y - mu) / sd
    return _tensors(x[:n_train], y[:n_train, None], x[n_train:], y[n_train:, None], classes=False)


def digits(seed: int = 0, test_fraction: float = 0.3) -> Data:
    """scikit-learn's bundled 8x8 digits (1797 images, no download): a fixed stratified split (the same
    for every seed: the seed only changes the initialisation and the batch order), pixels standardised
    with the training mean and std (constant pixels left at 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=test_fraction, random_state=0,
                                          stratify=d.target)
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    sd[sd == 0] = 1.0
    return _tensors((xtr - mu) / sd, ytr, (xte - mu) / sd, yte, classes=True)


# --------------------------------------------------------------------------------------------
# Tasks and variants: the registries
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """What a task's outputs are: the training loss and the test metric."""

    loss: Callable
    metric: Callable[[torch.Tensor, torch.Tensor], float]
    metric_name: str
    higher_is_better: bool


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * (out.argmax(1) == y).double().mean().item()


def _mse(out: torch.Tensor, y: torch.Tensor) -> float:
    return nn.functional.mse_loss(out.double(), y.double()).item()


KINDS = {
    "classification": Kind(nn.functional.cross_entropy, _accuracy, "test accuracy (%)", True),
    "regression": Kind(nn.functional.mse_loss, _mse, "test MSE", False),
}


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    make: Callable[[int], Data]  # seed -> data, deterministic
    kind: str  # a key of KINDS
    outputs: int
    widths: tuple[int, ...]
    epochs: int
    batch: int
    lr: float
    chance: float | None  # the metric of a constant guess, for reference

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    @property
    def constant_loss(self) -> float:
        """The training loss of a constant guess: ln(classes) for the uniform prediction (the classes are
        balanced), 1 for the training mean of the standardised regression targets. A run that ends above it
        has failed to train."""
        return math.log(self.outputs) if self.kind == "classification" else 1.0


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("spirals", "two spirals (generated; 2.5 turns, radius 2, noise sd 0.1; 400 train / 400 test points, "
         "2 classes)",
         two_spirals, "classification", 2, (32, 32), epochs=250, batch=50, lr=1e-2, chance=50.0),
    Task("cubic", "random cubic polynomial (generated; 3 inputs, 1000 train / 1000 test points, "
         "standardised targets)", random_cubic, "regression", 1, (32, 32), epochs=150, batch=100, lr=1e-2,
         chance=1.0),
    Task("digits", "handwritten digits (scikit-learn load_digits, 8x8; 1257 train / 540 test, 10 classes)",
         digits, "classification", 10, (64, 64), epochs=60, batch=100, lr=3e-3, chance=10.0),
)}


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    activation: Callable[[int, bool, int], nn.Module]  # (width, is last hidden layer, degree) -> module
    uses_degree: bool = True  # False: the same network at every degree (trained once)


def _hybrid(width: int, last: bool, degree: int) -> nn.Module:
    if not last:
        return nn.ReLU()
    return nn.Sequential(nn.ReLU(), SLAF(degree, "chebyshev", INTERVAL, backend=BACKEND))


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("relu", "ReLU on every hidden layer", lambda w, last, d: nn.ReLU(), uses_degree=False),
    Variant("slaf-power", "SLAF, power basis in raw x (the paper's form), identity start",
            lambda w, last, d: SLAF(d, "power", INTERVAL, backend=BACKEND)),
    Variant("slaf-normalised", "SLAF with batch-normalised powers, sum_j w_j BN(x^j) + b (the authors' code)",
            lambda w, last, d: NormalisedSLAF(d, w)),
    Variant("slaf-chebyshev", "SLAF, Chebyshev basis on [-3, 3], identity start",
            lambda w, last, d: SLAF(d, "chebyshev", INTERVAL, backend=BACKEND)),
    Variant("hybrid", "ReLU everywhere; the last hidden ReLU followed by a Chebyshev SLAF (identity start)",
            _hybrid),
)}


def build_model(task: Task, variant: Variant, n_inputs: int, degree: int = DEGREE) -> nn.Sequential:
    """Linear -> activation for each hidden width, then a Linear output layer."""
    layers, width = [], n_inputs
    for i, w in enumerate(task.widths):
        layers += [nn.Linear(width, w), variant.activation(w, i == len(task.widths) - 1, degree)]
        width = w
    layers.append(nn.Linear(width, task.outputs))
    return nn.Sequential(*layers)


def activations(model: nn.Sequential) -> list[nn.Module]:
    return [m for m in model if not isinstance(m, nn.Linear)]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _shapes(model: nn.Sequential, x_test: torch.Tensor, n_features: int = 4, points: int = 201) -> list[dict]:
    """Per hidden layer: the learned activation on a grid (the first n_features features; eval mode) and the
    1st-99th percentile range of its inputs on the test set."""
    acts = activations(model)
    seen = []
    hooks = [a.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach())) for a in acts]
    try:
        with torch.no_grad():
            model(x_test)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for act, z in zip(acts, seen, strict=True):
        q01, q99 = (float(v) for v in torch.quantile(z.flatten().double(), torch.tensor([0.01, 0.99],
                                                                                        dtype=torch.float64)))
        lo, hi = min(INTERVAL[0], q01), max(INTERVAL[1], q99)
        grid = torch.linspace(lo, hi, points)
        with torch.no_grad():
            y = act(grid[:, None].expand(points, z.shape[1]).contiguous())
        k = min(n_features, z.shape[1])
        out.append({"module": type(act).__name__ if not isinstance(act, nn.Sequential) else "ReLU+SLAF",
                    "grid": grid.tolist(), "values": y[:, :k].T.tolist(), "q01": q01, "q99": q99})
    return out


def train_one(task: Task | str, variant: Variant | str, seed: int, *, degree: int = DEGREE,
              epochs: int | None = None, shapes: bool = False) -> dict:
    """Train one network and return its record: metric, train metric, loss curve (mean training loss per
    epoch), diverged flag (a non-finite loss or weight in training: training stops; or a non-finite network
    output on the training or test inputs afterwards), failed flag (training ran to the end, but the last
    epoch's training loss is above a constant guess's, Task.constant_loss), parameter count, seconds; with
    `shapes`, the learned activation shapes for the figures."""
    task = TASKS[task] if isinstance(task, str) else task
    variant = VARIANTS[variant] if isinstance(variant, str) else variant
    spec = task.spec
    epochs = task.epochs if epochs is None else epochs
    t0 = time.perf_counter()
    data = task.make(seed)
    torch.manual_seed(seed)
    model = build_model(task, variant, data.n_inputs, degree)
    opt = torch.optim.Adam(model.parameters(), lr=task.lr)
    order = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    nb = max(1, n // task.batch)  # full batches only: the last partial one is dropped (the order reshuffles)
    curve, diverged, diverged_at, where = [], False, None, None
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=order)
        total = 0.0
        for b in range(nb):
            idx = perm[b * task.batch:(b + 1) * task.batch]
            loss = spec.loss(model(data.x_train[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        if diverged or not _finite(model):
            diverged, diverged_at, where = True, epoch, "training"
            break
        curve.append(total / nb)
    model.eval()
    metric = train_metric = math.nan
    if not diverged:
        with torch.no_grad():
            out, out_train = model(data.x_test), model(data.x_train)
        if bool(torch.isfinite(out).all()) and bool(torch.isfinite(out_train).all()):
            metric, train_metric = spec.metric(out, data.y_test), spec.metric(out_train, data.y_train)
        else:  # training stayed finite, but the trained network overflows on the data (float32)
            diverged, diverged_at, where = True, epochs, "evaluation"
    failed = bool(curve) and where != "training" and curve[-1] > task.constant_loss
    rec = {"task": task.name, "variant": variant.name, "seed": seed,
           "degree": degree if variant.uses_degree else None, "epochs": epochs, "metric": metric,
           "train_metric": train_metric, "diverged": diverged, "diverged_at": diverged_at,
           "diverged_in": where, "failed": failed, "params": n_params(model), "curve": curve,
           "seconds": time.perf_counter() - t0}
    if shapes and not diverged:
        rec["shapes"] = _shapes(model, data.x_test)
    return rec


def check_arguments(tasks, seeds, degrees) -> tuple[list[Task], list[int]]:
    """Validate everything up front, so bad input fails before any training."""
    names = list(TASKS) if tasks is None else list(tasks)
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise ValueError(f"unknown task {bad[0]!r}; allowed: {', '.join(TASKS)}" if bad else "no task given")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    ds = [check_degree(d) for d in ([degrees] if isinstance(degrees, int) else degrees)]
    if not ds or min(ds) < 1:
        raise ValueError(f"SLAF degrees must be at least 1, got {list(ds)}")
    return [TASKS[t] for t in dict.fromkeys(names)], list(dict.fromkeys(ds))


def run_experiments(tasks=None, seeds: int = 5, *, quick: bool = False, degrees=DEGREES,
                    threads: int | None = 1, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Every task x variant x degree x seed (seeds 0..seeds-1; ReLU once, it has no degree). Seed 0 at the
    first degree keeps the activation shapes. `threads`: torch's intra-op threads during the runs (restored
    afterwards); one is fastest for these small networks and steadiest on a shared machine."""
    todo, ds = check_arguments(tasks, seeds, degrees)
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    runs = []
    try:
        for task in todo:
            epochs = max(1, round(task.epochs * QUICK_FRACTION)) if quick else task.epochs
            for k, degree in enumerate(ds):
                for variant in VARIANTS.values():
                    if k and not variant.uses_degree:
                        continue
                    for seed in range(seeds):
                        r = train_one(task, variant, seed, degree=degree, epochs=epochs,
                                      shapes=seed == 0 and k == 0)
                        runs.append(r)
                        if progress:
                            m = f"diverged in {r['diverged_in']}" if r["diverged"] else f"{r['metric']:.4g}"
                            d = f"degree {degree}" if variant.uses_degree else "        "
                            progress(f"{task.name:8s} {variant.name:16s} {d} seed {seed}: {m} "
                                     f"({r['seconds']:.1f} s)")
    finally:
        torch.set_num_threads(old)
    return runs


# --------------------------------------------------------------------------------------------
# Statistics and findings (pure functions of the run records)
# --------------------------------------------------------------------------------------------
def _t975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


@dataclass(frozen=True)
class Summary:
    task: str
    variant: str
    degree: int | None  # None: no SLAF (ReLU)
    n: int  # runs
    finite: int  # runs that did not diverge
    mean: float
    std: float  # sample std over the finite runs (nan for one run)
    params: int
    extra: int  # params - ReLU net's params
    diverged: int
    diverged_in_evaluation: int  # of those, finite in training but not on the data afterwards
    failed: int  # trained to the end, but with a last training loss above a constant guess's
    # paired with ReLU on the same seeds (both finite); diff > 0 means better than ReLU
    pairs: int = 0
    diff_mean: float = math.nan
    diff_std: float = math.nan
    wins: int = 0
    verdict: str = "-"  # "better" / "worse" / "no clear difference" / "-" (ReLU, or too few pairs)

    @property
    def label(self) -> str:
        return self.variant if self.degree is None else f"{self.variant} (degree {self.degree})"


def summarise(runs: Sequence[dict]) -> list[Summary]:
    """Per (task, variant, degree): mean ± std of the metric, divergences, extra parameters, and the paired
    comparison with ReLU: the per-seed improvement (sign so that > 0 is better), its mean ± std, the number
    of seeds won, and a verdict from the 95 % paired t interval of the mean improvement (better or worse
    when it excludes 0; none with fewer than MIN_PAIRS pairs)."""
    by = {}
    for r in runs:
        by.setdefault((r["task"], r["variant"], r.get("degree")), []).append(r)
    out = []
    for (task, variant, degree), rs in by.items():
        sign = 1.0 if TASKS[task].spec.higher_is_better else -1.0
        vals = np.array([r["metric"] for r in rs if not r["diverged"]], dtype=float)
        base = {r["seed"]: r for r in runs if r["task"] == task and r["variant"] == "relu"}
        relu_params = next(iter(base.values()))["params"] if base else rs[0]["params"]
        s = dict(task=task, variant=variant, degree=degree, n=len(rs), finite=len(vals),
                 mean=float(vals.mean()) if len(vals) else math.nan,
                 std=float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                 params=rs[0]["params"], extra=rs[0]["params"] - relu_params,
                 diverged=sum(r["diverged"] for r in rs),
                 diverged_in_evaluation=sum(r.get("diverged_in") == "evaluation" for r in rs),
                 failed=sum(bool(r.get("failed")) for r in rs))
        if variant != "relu":
            d = np.array([sign * (r["metric"] - base[r["seed"]]["metric"]) for r in rs
                          if r["seed"] in base and not r["diverged"] and not base[r["seed"]]["diverged"]])
            d = np.round(d, 12)  # equal accuracies must give a difference of exactly 0, not 1e-14
            s.update(pairs=len(d), wins=int((d > 0).sum()))
            if len(d):
                s["diff_mean"] = float(d.mean())
            if len(d) > 1:
                s["diff_std"] = float(d.std(ddof=1))
            if len(d) >= MIN_PAIRS:
                half = _t975(len(d) - 1) * s["diff_std"] / math.sqrt(len(d))
                m = s["diff_mean"]
                s["verdict"] = ("better" if m - half > 0 else "worse" if m + half < 0
                                else "no clear difference")
        out.append(Summary(**s))
    return out


def _pm(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}g}" if math.isnan(std) else f"{mean:.{digits}g} ± {std:.2g}"


def _names(rows: Sequence[Summary]) -> str:
    return ", ".join(f"`{s.variant}`" for s in rows)


def _task_finding(task: str, rows: Sequence[Summary], degree: int | None, several: bool) -> str:
    t = TASKS[task]
    name = t.spec.metric_name
    head = f"**{task}**" + (f", degree {degree}" if several else "")
    ranked = sorted((s for s in rows if s.finite), key=lambda s: -s.mean if t.spec.higher_is_better
                    else s.mean)
    if not ranked:
        return f"{head}: every run diverged."
    best, relu = ranked[0], next((s for s in rows if s.variant == "relu" and s.finite), None)
    text = f"{head}: best mean {name} {_pm(best.mean, best.std)} with `{best.variant}`"
    if relu is not None and best is not relu:
        close = abs(relu.mean - best.mean) < np.nanmax([best.std, relu.std, 0.0])
        text += f"; ReLU {_pm(relu.mean, relu.std)}" + (" is within one standard deviation of it" if close
                                                        else "")
    text += "."
    parts = []
    verdicts = (("better", "better than ReLU beyond the seed spread"), ("worse", "worse than ReLU"),
                ("no clear difference", "no clear difference from ReLU"))
    for verdict, words in verdicts:
        group = [s for s in rows if s.verdict == verdict]
        if group:
            won = ", ".join(f"{s.wins}/{s.pairs}" for s in group)
            parts.append(f"{words}: {_names(group)}" + (f" (won {won} seeds)" if verdict != "worse" else ""))
    if parts:
        text += " Paired with ReLU seed by seed (95 % t interval of the mean difference): " + \
                "; ".join(parts) + "."
    return text


def findings(runs: Sequence[dict], summaries: Sequence[Summary] | None = None) -> list[str]:
    """Plain-language statements computed from the numbers: per task (and degree) the best variant and how
    each SLAF variant compares with ReLU; the divergences of each variant; the claim's verdict."""
    ss = list(summaries) if summaries is not None else summarise(runs)
    degrees = sorted({s.degree for s in ss if s.degree is not None})
    lines = []
    for task in dict.fromkeys(s.task for s in ss):
        for d in degrees or [None]:
            rows = [s for s in ss if s.task == task and s.degree in (None, d)]
            lines.append(_task_finding(task, rows, d, len(degrees) > 1))

    for variant in dict.fromkeys(s.variant for s in ss):
        for d in dict.fromkeys(s.degree for s in ss if s.variant == variant):
            rows = [s for s in ss if s.variant == variant and s.degree == d]
            dv, n = sum(s.diverged for s in rows), sum(s.n for s in rows)
            label = rows[0].label
            fl = sum(s.failed for s in rows)
            per = ", ".join(f"{s.task} {s.failed}/{s.n}" for s in rows if s.failed)
            failed = ("failed to train (its last training loss is above a constant guess's) in "
                      f"{fl} of {n} runs ({per})")
            if dv:
                where = ", ".join(f"{s.task} {s.diverged}/{s.n}" for s in rows if s.diverged)
                ev = sum(s.diverged_in_evaluation for s in rows)
                after = (f"; {ev} of them only after training (finite training loss and weights, "
                         "non-finite network outputs on the data)") if ev else ""
                lines.append(f"`{label}` diverged in {dv} of {n} runs ({where}){after}"
                             + (f"; it {failed}" if fl else "") + ".")
            elif fl:
                lines.append(f"`{label}` did not diverge, but {failed}.")
            elif variant == "slaf-power":
                lines.append(f"`{label}` (plain powers) neither diverged nor failed in any of its {n} runs.")
    if not any(s.diverged or s.failed for s in ss):
        lines.append(f"No run diverged or failed ({sum(s.n for s in ss)} runs).")

    d0 = degrees[0] if degrees else None
    main = [s for s in ss if s.degree == d0]
    hyb = [s for s in main if s.variant == "hybrid"]
    if hyb:
        won = [s.task for s in hyb if s.verdict == "better"]
        lost = [s.task for s in hyb if s.verdict == "worse"]
        extra = sorted({s.extra for s in hyb})
        lines.append("The claim (SLAF with a standard activation improves accuracy with few extra "
                     f"parameters), at degree {d0}: the hybrid adds {', '.join(map(str, extra))} "
                     f"parameter(s) and beats ReLU beyond the seed spread on {len(won)} of {len(hyb)} task(s)"
                     + (f" ({', '.join(won)})" if won else "")
                     + (f", and is worse on {', '.join(lost)}" if lost else "") + ".")
    slaf = [s for s in main if s.variant.startswith("slaf-")]
    if slaf:
        won = sorted({s.task for s in slaf if s.verdict == "better"})
        lines.append(f"Pure SLAF networks at degree {d0} beat ReLU beyond the seed spread on {len(won)} of "
                     f"{len({s.task for s in slaf})} task(s)" + (" (" + "; ".join(
                         f"{t}: {_names([s for s in slaf if s.task == t and s.verdict == 'better'])}"
                         for t in won) + ")" if won else "") + ".")
    return lines


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
COLOURS = {"relu": "0.35", "slaf-power": "tab:red", "slaf-normalised": "tab:green",
           "slaf-chebyshev": "tab:blue", "hybrid": "tab:purple"}


def activation_figure(runs: Sequence[dict], task: str) -> Figure:
    """One column per non-ReLU variant, one row per hidden layer: the learned activation of the run that
    kept its shapes (seed 0, first degree), a few features where they differ (NormalisedSLAF's statistics
    are per feature), ReLU dashed for reference; the shaded band is the 1st-99th percentile of the layer's
    inputs on the test set, outside which the polynomial only extrapolates."""
    rs = [r for r in runs if r["task"] == task and r["variant"] != "relu" and r.get("shapes")]
    variants = [v for v in VARIANTS if v != "relu"]
    layers = len(TASKS[task].widths)
    fig = Figure(figsize=(3.2 * len(variants), 2.8 * layers), layout="constrained")
    axes = fig.subplots(layers, len(variants), squeeze=False)
    degree = next((r["degree"] for r in rs), None)
    for j, v in enumerate(variants):
        rec = next((r for r in rs if r["variant"] == v), None)
        for i in range(layers):
            ax = axes[i, j]
            ax.set_title(f"{v}, layer {i + 1}", fontsize=9)
            if rec is None:
                ax.text(0.5, 0.5, "no shapes\n(diverged)", ha="center", va="center", transform=ax.transAxes)
                continue
            sh = rec["shapes"][i]
            g = np.array(sh["grid"])
            vals = np.array(sh["values"])
            inside = (g >= sh["q01"]) & (g <= sh["q99"])
            ax.axvspan(sh["q01"], sh["q99"], color="0.92", zorder=0)
            ax.plot(g, np.maximum(g, 0), "--", color="0.5", lw=1, label="ReLU")
            for k, y in enumerate(vals):
                ax.plot(g, y, color=COLOURS[v], lw=1.4 if len(vals) == 1 else 1.0,
                        alpha=1.0 if k == 0 else 0.6, label="learned" if k == 0 else None)
            ref = vals[:, inside] if inside.any() else vals
            lo, hi = float(ref.min()), float(ref.max())
            lo, hi = min(lo, -0.5), max(hi, float(g[inside].max()) if inside.any() else 1.0, 0.5)
            pad = 0.15 * (hi - lo)
            ax.set_ylim(lo - pad, hi + pad)
            ax.tick_params(labelsize=8)
            if i == layers - 1:
                ax.set_xlabel("x (layer input)", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{task}: learned activations, degree {degree} (seed 0; shaded: 1-99 % of the layer's "
                 "test-set inputs; several lines: several features)", fontsize=10)
    return fig


def curve_figure(runs: Sequence[dict], task: str) -> Figure:
    """Mean training loss per epoch over the seeds that did not diverge, per variant (log scale); solid at
    the first degree, dotted at the others."""
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.subplots()
    degrees = sorted({r["degree"] for r in runs if r["task"] == task and r["degree"] is not None})
    for v in VARIANTS:
        for k, d in enumerate(degrees if VARIANTS[v].uses_degree else [None]):
            cs = [r["curve"] for r in runs if r["task"] == task and r["variant"] == v and r["degree"] == d
                  and not r["diverged"]]
            if not cs:
                continue
            n = min(len(c) for c in cs)
            label = v if d is None else f"{v}, degree {d}"
            ax.plot(np.arange(1, n + 1), np.mean([c[:n] for c in cs], axis=0), color=COLOURS[v],
                    ls="-" if k == 0 else ":", label=f"{label} ({len(cs)} runs)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    ax.set_title(f"{task}: training loss (mean over the runs that did not diverge)", fontsize=10)
    ax.legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def results_table(summaries: Sequence[Summary], task: str) -> str:
    t = TASKS[task]
    rows = [s for s in summaries if s.task == task]
    better = "higher" if t.spec.higher_is_better else "lower"
    header = ["variant", "degree", t.spec.metric_name,
              f"improvement over ReLU ({better} is better; > 0 better)", "seeds won", "verdict",
              "runs", "diverged", "failed", "params", "extra params"]
    body = []
    for s in rows:
        relu = s.variant == "relu"
        dv = f"{s.diverged}" + (f" ({s.diverged_in_evaluation} after training)" if s.diverged_in_evaluation
                                else "")
        body.append([f"`{s.variant}`", "-" if s.degree is None else s.degree, _pm(s.mean, s.std),
                     "-" if relu else _pm(s.diff_mean, s.diff_std), "-" if relu else f"{s.wins}/{s.pairs}",
                     s.verdict, s.n, dv, s.failed, s.params, f"{s.extra:+d}"])
    # the comparison first, then the bookkeeping (runs, divergences, parameters) in a second table
    first, second = [0, 1, 2, 3, 4, 5], [0, 1, 6, 7, 8, 9, 10]
    return "\n".join(table([header[c] for c in cols], [[row[c] for c in cols] for row in body],
                            "".join("lrrrrlrrrrr"[c] for c in cols)) for cols in (first, second))


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_paper(runs: Sequence[dict], out, *, meta: dict | None = None) -> Path:
    """paper.md, paper_<task>_activations.png, paper_<task>_training.png and paper_runs.jsonl in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ss = summarise(runs)
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    degrees = sorted({r["degree"] for r in runs if r["degree"] is not None})
    first = next((r["degree"] for r in runs if r.get("shapes") and r["degree"] is not None),
                 degrees[0] if degrees else None)  # ReLU runs have no degree
    meta = meta or {}
    md = ["# Learning with self-learnable activations", ""]
    if meta:
        md += ["**Machine and date:** " + "; ".join(f"{k} {v}" for k, v in meta.items()) + ".", ""]
    md += ["Claim under test (Goyal, Goyal and Lall, arXiv 1906.09529): SLAF, alone or with standard "
           "activations, improves accuracy with few extra parameters. The same MLP per task is trained "
           "with each activation variant, the same optimiser (Adam), epochs, batches and seeds "
           f"({len(seeds)} seeds: {', '.join(map(str, seeds))}; the seed sets the initialisation, the batch "
           "order and, for the generated tasks, the data). SLAF coefficients are shared per layer; SLAF "
           f"degree{'s' if len(degrees) > 1 else ''} {', '.join(map(str, degrees))}"
           + (f" (degree {first} is the main comparison and the figures; the others test stability)"
              if len(degrees) > 1 else "") + ".", "", "Variants:", ""]
    md += [f"- `{v.name}`: {v.title}" for v in VARIANTS.values()]
    md += ["", "Mean ± sample std over the runs that did not diverge. *Diverged*: a non-finite training "
           "loss or weight (the run stops), or a non-finite network output on the training or test inputs "
           "after training; a diverged run's metric is left out of the mean. *Failed*: training ran to the "
           "end, but the last epoch's training loss is above a constant guess's (ln(classes), or 1 for the "
           "standardised regression targets); such a run stays in the mean unless it also diverged. "
           "*Improvement over ReLU*: per seed, the variant's metric minus ReLU's on the same seed (sign so "
           "that > 0 is better), mean ± std; *verdict* is `better` or `worse` when the 95 % paired t "
           f"interval of that mean excludes 0 (given at least {MIN_PAIRS} pairs). *Extra params* counts "
           "learned parameters over the ReLU network; `slaf-normalised` also keeps 2 × degree × width "
           "running statistics per layer (buffers, not learned).", "", "## Findings", ""]
    md += [f"- {s}" for s in findings(runs, ss)] + [""]
    for task in tasks:
        t = TASKS[task]
        ep = sorted({r["epochs"] for r in runs if r["task"] == task})
        md += [f"## {task}", "", f"{t.title}. MLP widths {list(t.widths)}; Adam lr {t.lr:g}, batch "
               f"{t.batch}, {', '.join(map(str, ep))} epochs; loss {t.spec.loss.__name__}. "
               + (f"A constant guess scores {t.chance:g}." if t.chance is not None else ""), "",
               results_table(ss, task), ""]
        secs = [r["seconds"] for r in runs if r["task"] == task]
        md += [f"{len(secs)} runs, {sum(secs):.0f} s in all ({np.median(secs):.1f} s median per run).", ""]
        name = f"paper_{task}_activations.png"
        save_figure(activation_figure(runs, task), out / name)
        md += [f"![learned activations on {task}]({name})", ""]
        name = f"paper_{task}_training.png"
        save_figure(curve_figure(runs, task), out / name)
        md += [f"![training loss on {task}]({name})", ""]
    lines = [json.dumps({k: _jsonable(v) for k, v in r.items() if k != "shapes"}) for r in runs]
    atomic_write(out / "paper_runs.jsonl", ("\n".join(lines) + "\n").encode())
    path = out / "paper.md"
    atomic_write(path, ("\n".join(md).rstrip() + "\n").encode())
    return path


def run_paper(tasks=None, seeds: int = 5, out="reports", quick: bool = False, *, degrees=DEGREES,
              progress: Callable[[str], None] | None = None) -> Path:
    """Run every task x variant x degree x seed and write the report; returns the path of paper.md.

    `tasks`: names in TASKS (default all); `degrees`: an int or a sequence, the first the main comparison;
    `quick`: a smoke run with QUICK_FRACTION of each task's epochs (pass seeds=1 or 2 as well);
    `progress`: called with one line per finished run. Bad input raises ValueError before any training."""
    check_arguments(tasks, seeds, degrees)
    t0 = time.perf_counter()
    runs = run_experiments(tasks, seeds, quick=quick, degrees=degrees, progress=progress)
    seconds = time.perf_counter() - t0
    meta = {"machine": f"{platform.machine()}, {_ncpu()} cores", "python": platform.python_version(),
            "torch": torch.__version__, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": "quick" if quick else "full", "training time": f"{seconds:.0f} s"}
    return write_paper(runs, out, meta=meta)


def _ncpu() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
