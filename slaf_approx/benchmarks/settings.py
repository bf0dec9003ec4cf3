"""What one benchmark run covers: device, dtypes, sizes, SLAF backends, peers, degrees, timing rounds.

The same validated :class:`BenchSettings` serve the command line (`slaf-approx bench`) and the pytest
options of the suite (suite/conftest.py). The suite's test modules read the settings of the session
(:func:`active`) in their ``pytest.mark.parametrize`` declarations.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("relu", "gelu", "silu", "tanh")
LAYER_OPS = ("gelu_layer", "slaf_layer")
#: the roofline, x.clone(), allocates its output as every op here does; copy_into writes a warm buffer
COPIES = ("copy", "copy_into")
#: what a user would write instead of an SLAF op, as (op, backend): eager torch or torch.compile
PEERS = ("horner:eager", "horner:compile", "recurrence:compile", "pau:eager", "pau:compile")
PEER_OPS = ("horner", "recurrence", "pau")
KERNEL_OPS = ("slaf", *PEER_OPS, *COPIES, *ACTIVATIONS, *LAYER_OPS)
MODES = ("forward", "forward+backward")
MODE_IDS = {"forward": "fwd", "forward+backward": "fwdbwd"}
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16")
DEFAULT_DTYPES = {"cpu": ("float32",), "cuda": ("float32", "bfloat16")}
DEFAULT_SIZES = {"cpu": (2**10, 2**16, 2**20, 2**24), "cuda": (2**20, 2**22, 2**24, 2**26, 2**28)}
DEFAULT_DEGREES = (2, 4, 8, 16)
#: --quick: one size and degree, and the peers whose figures the budgets read
QUICK_SIZE = {"cpu": 2**20, "cuda": 2**28}
QUICK_DEGREE = 8
QUICK_PEERS = ("horner:eager", "horner:compile")
#: timing: the rounds of one benchmark (each paired with a round of its anchor) fill pytest-benchmark's
#: --benchmark-max-time, from --benchmark-min-rounds up to MAX_ROUNDS; CUDA adds warm-up rounds
MAX_ROUNDS = 200
CUDA_ROUNDS, CUDA_WARMUP = 30, 5
MAX_SIZE = 2**31
#: with --benchmark-disable (the test suite) one size, at most this, two degrees and a cut layer batch
DISABLED_MAX_SIZE = 2**20
DISABLED_LAYER_BATCH = 2
#: the real layer: (batch, channels, height, width), per-channel SLAF of this degree beside nn.GELU
LAYER_SHAPE = (128, 512, 32, 32)
LAYER_DEGREE = 8
#: SLAF inputs are uniform on this interval, mapped to t in [-1, 1] (Chebyshev basis)
INTERVAL = (-3.0, 3.0)
BASIS = "chebyshev"


def size_label(n) -> str:
    n = int(n)
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def parse_size(text) -> int:
    """'65536', '2^16' or '2**16' -> 65536; ValueError for anything else or a size outside [1, 2^31]."""
    s = str(text).strip().replace("**", "^")
    try:
        if "^" in s:
            base, exp = s.split("^", 1)
            value = int(base) ** int(exp)
        else:
            value = int(s)
    except ValueError:
        raise ValueError(f"sizes are positive integers such as 65536 or 2^16, got {text!r}") from None
    if not 1 <= value <= MAX_SIZE:
        raise ValueError(f"sizes must be in [1, 2^31], got {text!r}")
    return value


def _split(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v for item in values for v in str(item).replace(",", " ").split()]


def _choices(values, allowed, what) -> tuple[str, ...]:
    out = []
    for v in _split(values):
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; allowed: {', '.join(allowed)}")
        if v not in out:
            out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class BenchSettings:
    """What one benchmark run covers. `backends`: the SLAF backends asked for (empty: every backend
    `kernels.available_backends` offers on the device); `disabled`: pytest-benchmark's --benchmark-disable
    (each benchmark runs once, untimed), where sizes above DISABLED_MAX_SIZE are dropped and the layer batch
    is cut."""

    device: str = "cpu"
    dtypes: tuple[str, ...] = ("float32",)
    sizes: tuple[int, ...] = DEFAULT_SIZES["cpu"]
    backends: tuple[str, ...] = ()
    peers: tuple[str, ...] = PEERS
    degrees: tuple[int, ...] = DEFAULT_DEGREES
    rounds: int | None = None
    warmup: int = CUDA_WARMUP
    disabled: bool = False
    layer_shape: tuple[int, ...] = LAYER_SHAPE


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def known_backends() -> tuple[str, ...]:
    """The SLAF backend names the kernels declare."""
    from .. import kernels

    return tuple(getattr(kernels, "BACKENDS", ("reference", "fused", "triton", "auto")))


def slaf_backends(settings: BenchSettings, dtype: str) -> list[str]:
    """The SLAF backends timed for `dtype` on the settings' device: those asked for, or every backend
    available there. On CPU 'triton' is left out: there it is
    Triton's interpreter, far too slow to time."""
    import torch

    from ..kernels import available_backends

    x = torch.empty(1, dtype=getattr(torch, dtype), device=settings.device)
    if settings.backends:
        return list(settings.backends)
    have = available_backends(x)
    return [b for b in have if b != "triton"] if settings.device == "cpu" else have


def bench_settings(
    device: str = "cpu",
    dtypes=None,
    sizes=None,
    backends=None,
    degrees=None,
    *,
    peers=None,
    rounds=None,
    warmup=None,
    disabled: bool = False,
    quick: bool = False,
    disabled_max_size: int = DISABLED_MAX_SIZE,
) -> BenchSettings:
    """Validated settings; None takes the device's default. ValueError (one line) for bad input: an unknown
    device, dtype, backend or peer, 'triton' on CPU, CUDA asked for but absent, a bad size or degree.
    `quick`: one size and degree (QUICK_SIZE, QUICK_DEGREE), the QUICK_PEERS and the backend 'auto' picks."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if device == "cuda" and not cuda_available():
        import torch

        raise ValueError(f"device 'cuda' asked for, but CUDA is not available (torch {torch.__version__})")
    dts = _choices(dtypes, DTYPES, "dtype") or DEFAULT_DTYPES[device]
    bks = _choices(backends, known_backends(), "backend")
    if device == "cpu" and "triton" in bks:
        raise ValueError(
            "backend 'triton' is benchmarked on CUDA only (on CPU it runs in Triton's "
            "interpreter, far too slow to time); use --device cuda"
        )
    if device == "cuda" and "fused" in bks:
        raise ValueError("backend 'fused' is the CPU kernel; on CUDA benchmark 'triton' or 'reference'")
    if quick and not bks:  # the backend a user gets: the one 'auto' picks
        import torch

        from ..kernels import resolve_backend

        bks = (resolve_backend("auto", torch.empty(1, dtype=getattr(torch, dts[0]), device=device)),)
    prs = _choices(peers, (*PEERS, "none"), "peer")
    prs = () if "none" in prs else prs or (QUICK_PEERS if quick else PEERS)
    szs = tuple(dict.fromkeys(parse_size(s) for s in _split(sizes)))
    if not szs:
        szs = (QUICK_SIZE[device],) if quick else DEFAULT_SIZES[device]
    degs = []
    for d in _split(degrees):
        try:
            value = int(d)
        except ValueError:
            value = -1
        if not 1 <= value <= 64:
            raise ValueError(f"degrees are integers in [1, 64], got {d!r}")
        degs.append(value)
    degs = tuple(dict.fromkeys(degs)) or ((QUICK_DEGREE,) if quick else DEFAULT_DEGREES)
    layer = LAYER_SHAPE
    if disabled:  # once through, untimed: the smallest size, the lowest and highest degree
        szs = (min(min(szs), disabled_max_size),)
        degs = tuple(sorted({min(degs), max(degs)}))
        layer = (DISABLED_LAYER_BATCH, *LAYER_SHAPE[1:])
    r = None if rounds is None else int(rounds)
    w = CUDA_WARMUP if warmup is None else int(warmup)
    if (r is not None and r < 1) or w < 0:
        raise ValueError(f"rounds must be >= 1 and warm-up rounds >= 0, got {r} and {w}")
    return BenchSettings(
        device, dts, tuple(sorted(szs)), bks, prs, tuple(sorted(degs)), r, w, bool(disabled), layer
    )


def settings_from_pytest(config) -> BenchSettings:
    """The settings given by suite/conftest.py's options on a pytest config."""
    opt = config.getoption
    return bench_settings(
        opt("bench_device"),
        opt("bench_dtype"),
        opt("bench_sizes"),
        opt("bench_backends"),
        opt("bench_degrees"),
        peers=opt("bench_peers"),
        rounds=opt("bench_rounds"),
        warmup=opt("bench_warmup"),
        disabled=bool(opt("benchmark_disable", False)),
        disabled_max_size=parse_size(opt("bench_disabled_max_size")),
    )


_ACTIVE: list[BenchSettings] = []


def activate(settings: BenchSettings) -> None:
    """Make `settings` the session's (suite/conftest.py, at pytest_configure)."""
    _ACTIVE[:] = [settings]


def active() -> BenchSettings:
    """The session's settings, read by the suite's parametrize declarations; the defaults outside a
    session."""
    return _ACTIVE[0] if _ACTIVE else bench_settings(disabled=True)


def library_info(device: str) -> dict:
    """Versions and device for pytest-benchmark's machine info."""
    import importlib.metadata

    import torch

    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = "not installed"
    info = {
        "torch": torch.__version__,
        "triton": triton,
        "cuda": torch.version.cuda or "none",
        "torch_threads": torch.get_num_threads(),
        "bench_device": device,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    return info
