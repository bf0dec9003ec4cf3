"""The learning experiments: NormalisedSLAF against its formula, the task data, the statistics, a quick run,
and bad input on the command line."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from slaf_approx import cli, paper
from slaf_approx.nn import SLAF, NormalisedSLAF


@pytest.fixture(autouse=True)
def _usable_backend(monkeypatch):
    """The experiments use backend "auto" (the fused C kernel); should that kernel be unusable on this machine
    (no compiler, or its module mid-edit), test the experiments' logic on the reference backend instead."""
    try:
        SLAF(2, backend="auto")(torch.zeros(3))
    except Exception:  # any failure of the kernel: fall back
        monkeypatch.setattr(paper, "BACKEND", "reference")


# --------------------------------------------------------------------------------------------
# NormalisedSLAF
# --------------------------------------------------------------------------------------------
def _by_hand(x, w, b, mean, var, eps):
    """sum_j w_j (x**j - mean_j) / sqrt(var_j + eps) + b, features along dim 1 (mean, var: [d, F])."""
    return sum(w[..., j] * (x ** (j + 1) - mean[j]) / torch.sqrt(var[j] + eps) for j in range(len(mean))) + b


def _random_layer(d, f, channels=None, seed=0):
    m = NormalisedSLAF(d, f, channels=channels, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
    return m


@pytest.mark.parametrize("channels", [None, 5])
def test_train_mode_is_the_formula_with_batch_statistics(channels):
    d, f, n = 3, 5, 64
    m = _random_layer(d, f, channels)
    x = torch.randn(n, f, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5
    powers = torch.stack([x ** (j + 1) for j in range(d)])  # [d, N, F]
    mean, var = powers.mean(1), powers.var(1, unbiased=False)  # biased variance normalises, no affine
    w = m.weight.detach() if channels is None else m.weight.detach().t()[:, None, :].permute(1, 2, 0)
    expect = _by_hand(x, w, m.bias.detach(), mean, var, m.eps)
    torch.testing.assert_close(m(x), expect, rtol=1e-12, atol=1e-12)
    # the running statistics moved by momentum 0.1 towards the batch mean and the unbiased batch variance
    torch.testing.assert_close(m.running_mean, 0.1 * mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.running_var, 0.9 + 0.1 * powers.var(1, unbiased=True), rtol=1e-12, atol=0)


def test_eval_mode_uses_the_running_statistics():
    d, f = 3, 4
    m = _random_layer(d, f)
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(d, f, generator=g, dtype=torch.float64)
    var = torch.rand(d, f, generator=g, dtype=torch.float64) + 0.5
    m.running_mean.copy_(mean)
    m.running_var.copy_(var)
    m.eval()
    x = torch.randn(7, f, generator=g, dtype=torch.float64)
    torch.testing.assert_close(m(x), _by_hand(x, m.weight.detach(), m.bias.detach(), mean, var, m.eps),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m(x[2:3]), m(x)[2:3], rtol=0, atol=0)  # one sample at a time: the same map
    assert torch.equal(m.running_mean, mean)  # evaluation leaves the statistics alone


def test_shared_statistics_on_nd_input():
    # features=None: one statistic per power over every element; [N, C, L] keeps its shape
    m = NormalisedSLAF(2, dtype=torch.float64)
    x = torch.randn(4, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    p1, p2 = x.flatten(), x.flatten() ** 2
    expect = (x - p1.mean()) / torch.sqrt(p1.var(unbiased=False) + m.eps)  # w = (1, 0), b = 0 at start
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, expect, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.running_mean, 0.1 * torch.stack([p1.mean(), p2.mean()]), rtol=1e-12, atol=0)


@pytest.mark.parametrize("train", [True, False])
def test_gradcheck(train):
    m = _random_layer(3, 4, channels=4, seed=4)
    m.running_var.fill_(2.0)
    m.train(train)
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5), requires_grad=True)
    w = m.weight.detach().clone().requires_grad_()
    b = m.bias.detach().clone().requires_grad_()

    def f(x, w, b):
        return torch.func.functional_call(m, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b))


def test_eval_mode_is_a_polynomial_of_degree_d():
    d, f = 3, 3
    m = _random_layer(d, f, seed=6)
    g = torch.Generator().manual_seed(7)
    for _ in range(20):  # move the running statistics away from (0, 1)
        m(torch.randn(32, f, generator=g, dtype=torch.float64) * 0.8 + 0.3)
    m.eval()
    grid = torch.linspace(-2, 2, 41, dtype=torch.float64)
    with torch.no_grad():
        y = m(grid[:, None].expand(-1, f).contiguous()).numpy()
    for k in range(f):
        coef, res, *_ = np.polyfit(grid.numpy(), y[:, k], d, full=True)
        assert res[0] < 1e-20 * max(1.0, float(np.sum(y[:, k] ** 2)))  # exactly degree d ...
        _, res2, *_ = np.polyfit(grid.numpy(), y[:, k], d - 1, full=True)
        assert res2[0] > 1e-3  # ... and not less (w_3 != 0)
        p = m.polynomial(k)
        assert p.basis == "power" and p.variable == "raw" and p.degree == d
        np.testing.assert_allclose(p.coef, coef[::-1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p(grid.numpy()), y[:, k], rtol=1e-12, atol=1e-12)


def test_normalised_slaf_bad_arguments():
    with pytest.raises(ValueError, match="degree"):
        NormalisedSLAF(0)
    with pytest.raises(ValueError, match="must equal"):
        NormalisedSLAF(3, 4, channels=5)
    with pytest.raises(ValueError, match="features"):
        NormalisedSLAF(3, 0)
    with pytest.raises(ValueError, match=r"expected input \[N, 4"):
        NormalisedSLAF(3, 4)(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="name one"):
        NormalisedSLAF(3, 4).polynomial()


def test_normalised_slaf_starts_as_the_standardised_input_with_d_plus_1_parameters():
    m = NormalisedSLAF(3, 8)
    assert sum(p.numel() for p in m.parameters()) == 4  # w_1..w_3 and b, shared
    assert m.weight.tolist() == [1.0, 0.0, 0.0] and m.bias.item() == 0.0
    assert sum(p.numel() for p in NormalisedSLAF(3, channels=8).parameters()) == 8 * 4


# --------------------------------------------------------------------------------------------
# Task data
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, n_in, n_train, n_test", [("spirals", 2, 400, 400), ("cubic", 3, 1000, 1000),
                                                         ("digits", 64, 1257, 540)])
def test_task_data_shapes_and_determinism(name, n_in, n_train, n_test):
    t = paper.TASKS[name]
    a, b = t.make(0), t.make(0)
    assert a.x_train.shape == (n_train, n_in) and a.x_test.shape == (n_test, n_in)
    assert a.x_train.dtype == torch.float32
    for fld in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, fld), getattr(b, fld))
    if t.kind == "classification":
        assert a.y_train.dtype == torch.long and a.y_train.shape == (n_train,)
        assert set(a.y_train.unique().tolist()) == set(range(t.outputs))
    else:
        assert a.y_train.shape == (n_train, 1)
        assert abs(float(a.y_train.mean())) < 1e-5 and abs(float(a.y_train.std(unbiased=False)) - 1) < 1e-5
    generated = name != "digits"  # the digits split is fixed; the generated tasks draw new data per seed
    assert (not torch.equal(a.x_train, t.make(1).x_train)) == generated


def test_class_balance():
    s = paper.TASKS["spirals"].make(3)
    assert torch.bincount(s.y_train).tolist() == [200, 200]
    assert torch.bincount(s.y_test).tolist() == [200, 200]
    d = paper.TASKS["digits"].make(0)
    for y in (d.y_train, d.y_test):  # stratified: each digit 9.5-10.6 % of each half (load_digits: 174-183)
        frac = torch.bincount(y).double() / len(y)
        assert float(frac.min()) > 0.09 and float(frac.max()) < 0.11
    # digits: standardised with the training statistics
    assert float(d.x_train.mean(0).abs().max()) < 1e-5


def test_random_cubic_is_a_cubic():
    # a least-squares fit on the 20 cubic monomials reproduces the targets exactly, one on the 10 quadratic
    # ones does not
    data = paper.random_cubic(4)
    x, y = data.x_train.double().numpy(), data.y_train.double().numpy()[:, 0]
    for degree, exact in ((3, True), (2, False)):
        exps = np.array(paper._monomials(3, degree))
        A = (x[:, None, :] ** exps[None]).prod(axis=2)
        res = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
        assert (np.sqrt(np.mean(res ** 2)) < 1e-5) == exact


# --------------------------------------------------------------------------------------------
# Models, training, statistics
# --------------------------------------------------------------------------------------------
def test_extra_parameters_are_the_slaf_coefficients():
    t = paper.TASKS["spirals"]
    counts = {v: paper.n_params(paper.build_model(t, paper.VARIANTS[v], 2, degree=3)) for v in paper.VARIANTS}
    relu = 2 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2
    assert counts == {"relu": relu, "slaf-power": relu + 8, "slaf-normalised": relu + 8,
                      "slaf-chebyshev": relu + 8, "hybrid": relu + 4}


def test_hybrid_starts_as_the_relu_network():
    t = paper.TASKS["spirals"]
    x = t.make(0).x_test
    outs = []
    for v in ("relu", "hybrid"):
        torch.manual_seed(0)
        with torch.no_grad():
            outs.append(paper.build_model(t, paper.VARIANTS[v], 2)(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)


def test_a_non_finite_loss_is_recorded_as_divergence():
    t = paper.TASKS["cubic"]

    def poisoned(seed):
        d = t.make(seed)
        d.x_train[::7] = float("nan")
        return d

    r = paper.train_one(dataclasses.replace(t, make=poisoned), "slaf-power", 0, epochs=3)
    assert r["diverged"] and r["diverged_at"] == 0 and r["diverged_in"] == "training"
    assert math.isnan(r["metric"]) and r["curve"] == [] and not r["failed"]


def _fake(task, variant, seed, metric, diverged=None, params=100, failed=False):
    return {"task": task, "variant": variant, "seed": seed, "metric": math.nan if diverged else metric,
            "diverged": diverged is not None, "diverged_in": diverged, "failed": failed, "params": params,
            "curve": [1.0],
            "epochs": 1, "degree": None if variant == "relu" else 3, "seconds": 0.1}


def test_summary_pairs_seeds_and_gives_verdicts():
    relu = [70.0, 80.0, 75.0, 85.0, 90.0]  # a large spread across seeds ...
    runs = [_fake("spirals", "relu", s, m) for s, m in enumerate(relu)]
    runs += [_fake("spirals", "hybrid", s, m + 1.0 + 0.1 * s, params=104) for s, m in enumerate(relu)]  # ...
    runs += [_fake("spirals", "slaf-power", s, m - 0.5 * (-1) ** s, params=108) for s, m in enumerate(relu)]
    runs += [_fake("spirals", "slaf-chebyshev", s, 60.0, params=108,
                   diverged={0: "training", 1: "evaluation"}.get(s)) for s in range(5)]
    runs += [_fake("spirals", "slaf-normalised", s, 50.0 if s == 4 else m, params=108, failed=s == 4)
             for s, m in enumerate(relu)]
    ss = {s.variant: s for s in paper.summarise(runs)}
    h = ss["hybrid"]  # ... but the hybrid wins on every seed: better, though inside ReLU's std
    assert h.verdict == "better" and h.wins == 5 and h.extra == 4 and h.pairs == 5
    assert abs(h.diff_mean - 1.2) < 1e-12 and abs(h.mean - (np.mean(relu) + 1.2)) < 1e-12
    assert ss["slaf-power"].verdict == "no clear difference" and ss["slaf-power"].wins == 2
    c = ss["slaf-chebyshev"]
    assert c.diverged == 2 and c.diverged_in_evaluation == 1 and c.finite == 3 and c.pairs == 3
    assert c.verdict == "worse" and c.std == 0.0
    assert ss["relu"].verdict == "-" and ss["relu"].extra == 0
    text = "\n".join(paper.findings(runs))
    assert "`slaf-chebyshev (degree 3)` diverged in 2 of 5 runs (spirals 2/5); 1 of them only after" in text
    assert "`slaf-power (degree 3)` (plain powers) neither diverged nor failed in any of its 5 runs" in text
    assert ss["slaf-normalised"].failed == 1 and ss["slaf-normalised"].finite == 5  # failed runs stay in
    assert "`slaf-normalised (degree 3)` did not diverge, but failed to train" in text
    assert "in 1 of 5 runs (spirals 1/5)" in text
    assert "better than ReLU beyond the seed spread: `hybrid`" in text
    assert "beats ReLU beyond the seed spread on 1 of 1 task(s) (spirals)" in text


def test_regression_improvement_is_a_decrease():
    runs = [_fake("cubic", "relu", s, m) for s, m in enumerate([0.010, 0.012, 0.011])]
    runs += [_fake("cubic", "slaf-power", s, m) for s, m in enumerate([0.001, 0.002, 0.0012])]
    (s,) = [s for s in paper.summarise(runs) if s.variant == "slaf-power"]
    assert s.diff_mean > 0 and s.verdict == "better" and s.wins == 3


def test_quick_run_writes_the_report(tmp_path):
    old = torch.get_num_threads()
    path = paper.run_paper(seeds=2, out=tmp_path, quick=True)
    assert torch.get_num_threads() == old  # the thread count is restored
    text = path.read_text()
    for v, variant in paper.VARIANTS.items():  # one row per task (and degree, but ReLU has none) in each of
        rows = [line for line in text.splitlines() if line.startswith(f"| `{v}` |")]  # the two tables
        assert len(rows) == 2 * len(paper.TASKS) * (len(paper.DEGREES) if variant.uses_degree else 1)
    widths = {line.count(" | ") + 1 for line in text.splitlines() if line.startswith("| ")}
    assert max(widths) <= 8, widths
    for task in paper.TASKS:
        assert f"## {task}" in text
        for kind in ("activations", "training"):
            png = tmp_path / f"paper_{task}_{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "| diverged | failed |" in text and "## Findings" in text
    runs = [json.loads(line) for line in (tmp_path / "paper_runs.jsonl").read_text().splitlines()]
    assert len(runs) == len(paper.TASKS) * (1 + (len(paper.VARIANTS) - 1) * len(paper.DEGREES)) * 2
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files
    # ReLU on the spirals beats chance (50 %) by a margin even in the quick run: 65 % is six standard
    # deviations of a coin-flip classifier's accuracy on 400 test points (sqrt(0.25 / 400) = 2.5 %); the
    # full run reaches about 90 %.
    spirals = [r for r in runs if r["task"] == "spirals" and r["variant"] == "relu"]
    assert all(not r["diverged"] and r["metric"] > 65.0 for r in spirals), spirals


def test_run_paper_rejects_bad_input_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'mnist'; allowed: spirals, cubic, digits"):
        paper.run_paper(["spirals", "mnist"], out=tmp_path / "x")
    with pytest.raises(ValueError, match="positive integer"):
        paper.run_paper(seeds=0, out=tmp_path / "x")
    with pytest.raises(ValueError, match="at least 1"):
        paper.run_paper(degrees=[3, 0], out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [["paper", "--tasks", "mnist"], ["paper", "--seeds", "0"],
                                  ["paper", "--seeds", "-3"], ["paper", "--seeds", "two"]])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, argv, tmp_path):
    code = cli.main(argv + ["--out", str(tmp_path / "x")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("slaf-approx: error:")
    assert ("mnist" in err) if "--tasks" in argv else ("positive integer" in err)
    assert not (tmp_path / "x").exists()
