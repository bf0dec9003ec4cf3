"""The pytest command line of `slaf-approx bench`: the suite shipped in this package, run from any
directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .settings import BenchSettings

SUITE = Path(__file__).resolve().with_name("suite")
#: --quick keeps the Remez benchmarks of this degree (a -k keyword: it matches the parameter id)
QUICK_REMEZ = "20"


def pytest_command(
    settings: BenchSettings,
    json_path,
    *,
    quick: bool = False,
    python: str = "python",
    deadline: float | None = None,
    fit: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """argv timing the suite: the kernel benchmarks and, on CPU with `fit`, the fitting engine's; the run
    goes to `json_path` (pytest-benchmark's JSON). `quick` leaves out the default sweep and the layer;
    `deadline` skips the benchmarks left after that many seconds; `extra`: more pytest arguments."""
    files = [str(SUITE / "test_bench_kernels.py")]
    if fit and settings.device == "cpu":  # the fitting engine runs on the CPU whatever the device
        files.append(str(SUITE / "test_bench_fit.py"))
    argv = [
        python,
        "-m",
        "pytest",
        *files,
        "-p",
        "no:cacheprovider",
        "-q",
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        "--bench-device",
        settings.device,
        "--bench-dtype",
        ",".join(settings.dtypes),
        "--bench-sizes",
        ",".join(map(str, settings.sizes)),
        "--bench-peers",
        ",".join(settings.peers) or "none",
        "--bench-degrees",
        ",".join(map(str, settings.degrees)),
        "--bench-warmup",
        str(settings.warmup),
    ]
    if settings.backends:
        argv += ["--bench-backends", ",".join(settings.backends)]
    if settings.rounds:
        argv += ["--bench-rounds", str(settings.rounds)]
    if quick:
        # the layer, the sweep and the Remez fits but the highest degree's (the ids end in "-DEGREE]") out
        argv += ["-k", f"not test_default_sweep and not test_layer and (not test_remez or {QUICK_REMEZ})"]
    if deadline is not None:
        argv += ["--bench-deadline", f"{deadline:g}"]
    return argv + list(extra)
