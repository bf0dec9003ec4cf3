"""The SLAF backends, each declared once: name, module, devices, dtypes, compute dtype, choice by "auto".

Every backend module provides the same three functions, on the kernels' layout (x2d contiguous [rows, S],
row r using coefficient row r % C of coef [C, K], A and B [K] the basis recurrence, all in the backend's
compute dtype):

    unavailable_reason(device_type) -> str | None        None when it runs here (may build, once)
    forward(x2d, coef, A, B, scale, shift, clamp, tlo, thi) -> y2d                  (x2d's dtype)
    backward(x2d, gy2d, coef, A, B, scale, shift, clamp, tlo, thi, need_gx, need_gcoef)
        -> (gx2d in x2d's dtype or None, gcoef float64 [C, K] or None)

The coefficient gradient is reduced in float64 on every backend (the CPU kernel accumulates in float64, the
Triton partial sums are added in float64); the op hands it back in coef's dtype. The op (kernels/__init__.py)
prepares the layout, so the functions named here may skip argument checks.

Adding a backend: one module with those functions and one line in ``REGISTRY``.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from dataclasses import dataclass

import torch


class SlafBackendWarning(UserWarning):
    """backend="auto" fell back to a slower backend; the message says why (once per reason)."""


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # kernels submodule with unavailable_reason / forward / backward
    devices: tuple[str, ...]  # device types it can run on (availability may still say no)
    dtypes: tuple[torch.dtype, ...]  # input dtypes it takes
    compute_dtype: torch.dtype | None  # what coef, A and B are cast to; None: x's dtype (halves: float32)
    auto_on: tuple[str, ...] = ()  # device types on which "auto" picks it, in REGISTRY order
    forward_name: str = "forward"
    backward_name: str = "backward"
    autograd: bool = False  # differentiable by torch's autograd as it stands (no custom backward needed)

    def _module(self):
        return importlib.import_module(f".{self.module}", __package__)

    @functools.cached_property  # a frozen dataclass still has a __dict__ for this
    def forward(self):
        return getattr(self._module(), self.forward_name)

    @functools.cached_property
    def backward(self):
        return getattr(self._module(), self.backward_name)

    def unavailable_reason(self, device_type: str, dtype: torch.dtype) -> str | None:
        """None when this backend runs on tensors of (device_type, dtype) here, else why not."""
        if device_type not in self.devices:
            return f"it runs on {' or '.join(self.devices)} tensors, got device type {device_type!r}"
        if dtype not in self.dtypes:
            return f"it takes {', '.join(str(d).replace('torch.', '') for d in self.dtypes)}, got {dtype}"
        try:
            return self._module().unavailable_reason(device_type)
        except ImportError as exc:
            return f"cannot import its module: {exc}"

    def compute(self, dtype: torch.dtype) -> torch.dtype:
        """What coef, A and B are cast to for x of `dtype`: the declared compute dtype, else x's own dtype
        widened as the reference widens it (half precision computes in float32)."""
        from .reference import WIDEN

        return self.compute_dtype or WIDEN.get(dtype, dtype)


_FLOATS = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
REGISTRY: dict[str, Backend] = {b.name: b for b in (
    Backend("reference", "reference", ("cpu", "cuda", "meta"), _FLOATS, None, auto_on=(), autograd=True),
    Backend("fused", "cpu", ("cpu",), (torch.float32, torch.float64), None, auto_on=("cpu",),
            forward_name="run_forward", backward_name="run_backward"),
    Backend("triton", "triton_kernels", ("cuda", "cpu"), (torch.float32, torch.float16, torch.bfloat16),
            torch.float32, auto_on=("cuda",)),
)}
AUTO = "auto"
NAMES = (*REGISTRY, AUTO)

_resolved: dict[tuple, str] = {}
_warned: set[str] = set()


def forget() -> None:
    """Drop the remembered choices and warnings (after availability changed, e.g. in tests)."""
    _resolved.clear()
    _warned.clear()


def available(device_type: str, dtype: torch.dtype) -> list[str]:
    """Names of the backends that run on (device_type, dtype) here, in REGISTRY order."""
    return [n for n, b in REGISTRY.items() if b.unavailable_reason(device_type, dtype) is None]


@torch.compiler.assume_constant_result
def resolve(backend: str, device_type: str, dtype: torch.dtype) -> str:
    """The concrete backend name for `backend` on (device_type, dtype); ValueError with the reason where the
    named one cannot run. "auto" takes the first available backend that declares the device in `auto_on`,
    else the reference, warning once (SlafBackendWarning) when a preferred backend is unavailable.

    Remembered per (backend, device type, dtype) until :func:`forget`. torch.compile treats the result as a
    constant and calls this outside the traced graph, so a first build happens outside tracing too.
    """
    key = (backend, device_type, dtype)
    name = _resolved.get(key)
    if name is None:
        name = _resolve(backend, device_type, dtype)
        _resolved[key] = name
    return name


def _resolve(backend: str, device_type: str, dtype: torch.dtype) -> str:
    if backend == AUTO:
        for b in REGISTRY.values():
            if device_type not in b.auto_on or dtype not in b.dtypes:
                continue
            why = b.unavailable_reason(device_type, dtype)
            if why is None:
                return b.name
            if why not in _warned:
                _warned.add(why)
                warnings.warn(f"backend 'auto' uses 'reference' instead of {b.name!r} on {device_type} "
                              f"{dtype}: {why}", SlafBackendWarning, stacklevel=4)
        return "reference"
    b = REGISTRY.get(backend)
    if b is None:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(NAMES)}")
    why = b.unavailable_reason(device_type, dtype)
    if why is not None:
        raise ValueError(f"backend {backend!r} cannot run here: {why}")
    return backend
