"""`SLAF`: a self-learnable activation, y = sum_i a_i phi_i(x), as a drop-in torch.nn.Module.

    act = SLAF(degree=8, init="gelu")                      # starts as the best L2 fit of GELU on [-3, 3]
    act = SLAF(degree=3, basis="power", channels=64)       # the paper's form, one polynomial per channel
    act = SLAF.from_fit(slaf_approx.fit("tanh", 6))        # any fitted record

The input is mapped from [lo, hi] to t in [-1, 1] (the power basis defaults to the raw x, the paper's
form). Outside [lo, hi] the polynomial extrapolates (the paper's behaviour), or, with
out_of_range="clamp", holds its end values.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .bases import SlafPolynomial, check_degree, check_interval, check_variable, get_basis, kernel_mapping
from .kernels import BACKENDS, BASIS_CODES, slaf

OUT_OF_RANGE = ("extrapolate", "clamp")


class SLAF(nn.Module):
    """Self-learnable activation with `degree + 1` coefficients, shared or per channel (dim 1)."""

    def __init__(self, degree: int = 3, basis: str = "chebyshev", interval=(-3.0, 3.0), *,
                 channels: int | None = None, init="identity", variable: str | None = None,
                 out_of_range: str = "extrapolate", backend: str = "auto", init_method: str = "lstsq",
                 dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.degree = check_degree(degree)
        b = get_basis(basis)
        if b.name not in BASIS_CODES:
            raise ValueError(f"unknown basis {basis!r}; allowed: {', '.join(BASIS_CODES)}")
        self.basis = b.name
        self.variable = check_variable(b, variable or b.default_variable)
        self.interval = check_interval(interval)
        if out_of_range not in OUT_OF_RANGE:
            raise ValueError(f"unknown out_of_range {out_of_range!r}; allowed: {', '.join(OUT_OF_RANGE)}")
        self.out_of_range = out_of_range
        self.backend = backend
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int)
                                     or channels < 1):
            raise ValueError(f"channels must be a positive integer or None, got {channels!r}")
        self.channels = channels
        coef = torch.as_tensor(self._initial(init, init_method), dtype=dtype or torch.get_default_dtype())
        if channels is not None:
            coef = coef.expand(channels, -1).clone()
        self.coefficients = nn.Parameter(coef.to(device))

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}; allowed: {', '.join(BACKENDS)}")
        self._backend = value

    def _initial(self, init, method: str) -> np.ndarray:
        K = self.degree + 1
        lo, hi = self.interval
        if isinstance(init, str) and init == "identity":
            ident = SlafPolynomial("power", (0.0, 1.0), (lo, hi), "raw").convert(self.basis, self.variable)
            c = np.zeros(K)
            n = min(K, len(ident.coef))
            c[:n] = ident.coef[:n]
            if K == 1:  # a constant cannot be the identity: take the best constant, the midpoint
                c[0] = 0.5 * (lo + hi)
            return c
        if isinstance(init, str):
            from .fit import fit

            rec = fit(init, self.degree, method, self.basis, self.interval, variable=self.variable)
            return np.asarray(rec.coefficients)
        c = np.asarray(init.detach().cpu() if isinstance(init, torch.Tensor) else init, dtype=float)
        if c.shape != (K,):
            raise ValueError(f"init coefficients must have length degree + 1 = {K}, got shape {c.shape}")
        return c

    @classmethod
    def from_fit(cls, record, **kwargs) -> SLAF:
        """An SLAF holding a fitted record's coefficients, basis, variable and interval."""
        return cls(record.degree, record.basis, (record.lo, record.hi), init=list(record.coefficients),
                   variable=record.variable, **kwargs)

    @classmethod
    def from_coefficients(cls, name: str, path=None, **kwargs) -> SLAF:
        """An SLAF holding a stored coefficient set (`slaf-approx coefficients` lists the names), with the
        basis, variable and interval it was fitted for. `path`: a coefficient file (default: the shipped
        one). Rational sets (P/Q) are not polynomials and are refused."""
        from .coefstore import entry

        e = entry(name, path)
        if e["kind"] != "polynomial":
            raise ValueError(f"coefficient set {name!r} is {e['kind']} (type {tuple(e['type'])}); an SLAF "
                             "holds a polynomial: pick a polynomial set")
        return cls(e["degree"], e["basis"], tuple(e["interval"]), init=list(e["coefficients"]),
                   variable=e["variable"], **kwargs)

    @property
    def mapping(self) -> tuple[float, float, float, float]:
        """(scale, shift, tlo, thi): t = scale * x + shift, clamped to [tlo, thi] when clamping."""
        return kernel_mapping(self.interval, self.variable)

    def polynomial(self, channel: int | None = None) -> SlafPolynomial:
        """The activation (of one channel) as a SlafPolynomial, for analysis and export."""
        c = self.coefficients.detach().cpu().double()
        if c.dim() == 2:
            if channel is None:
                raise ValueError(f"this SLAF has {c.shape[0]} channels: name one")
            c = c[channel]
        return SlafPolynomial(self.basis, tuple(c.tolist()), self.interval, self.variable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.coefficients
        want = (self.degree + 1,) if self.channels is None else (self.channels, self.degree + 1)
        if tuple(c.shape) != want:
            raise ValueError(f"coefficients have shape {tuple(c.shape)}; this SLAF (degree {self.degree}, "
                             f"channels {self.channels}) needs {want}")
        scale, shift, tlo, thi = self.mapping
        return slaf(x, self.coefficients, self.basis, scale, shift, self.out_of_range == "clamp", tlo, thi,
                    self.backend)

    def extra_repr(self) -> str:
        ch = f", channels={self.channels}" if self.channels else ""
        return (f"degree={self.degree}, basis={self.basis!r}, variable={self.variable!r}, "
                f"interval={self.interval}{ch}, out_of_range={self.out_of_range!r}, backend={self.backend!r}")


class NormalisedSLAF(nn.Module):
    """The authors' stabilised SLAF: each power is batch-normalised before it is weighted,

        y = sum_{j=1..d} w_j * BN(x**j) + b,    BN(v) = (v - mean) / sqrt(var + eps), no affine.

    The issue that asked for this layer describes the authors' own code so: "normalises each power by batch
    norm before weighting it (y = sum_j w_j BN(x^j) + b, no affine in the BN, running statistics for
    evaluation); plain powers were unstable". Exactly as ``torch.nn.BatchNorm1d(affine=False)``: in training
    mode each power is normalised by its batch mean and biased batch variance, and the running mean and the
    running (unbiased) variance move by `momentum`; in eval mode the running statistics are used, so the map
    is the fixed polynomial of degree d given by :meth:`polynomial`.

    * `features`: the batch statistics are per feature along dim 1 (inputs [N, features] or
      [N, features, *], as BatchNorm1d(features)); None: one statistic per power over all elements.
    * `channels`: the weights w (and b) are per channel along dim 1 (then `features` defaults to `channels`
      and must equal it); None: one (w, b) shared by all elements, d + 1 parameters.
    * Initial weights: w_1 = 1, w_2 = ... = w_d = 0, b = 0, i.e. the layer starts as BN(x), the standardised
      input (not the identity: the standardisation is what the normalisation is for).
    """

    def __init__(self, degree: int = 3, features: int | None = None, *, channels: int | None = None,
                 eps: float = 1e-5, momentum: float = 0.1, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.degree = check_degree(degree)
        if self.degree < 1:
            raise ValueError("NormalisedSLAF needs degree >= 1 (degree 0 would be a constant)")
        for name, v in (("features", features), ("channels", channels)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if channels is not None and features is not None and features != channels:
            raise ValueError(f"per-channel weights need per-channel statistics: features ({features}) must "
                             f"equal channels ({channels})")
        if not (eps > 0 and 0 < momentum <= 1):
            raise ValueError(f"need eps > 0 and 0 < momentum <= 1, got eps={eps!r}, momentum={momentum!r}")
        self.features = channels if features is None else features
        self.channels = channels
        self.eps = float(eps)
        self.momentum = float(momentum)
        kw = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        stat = (self.degree,) if self.features is None else (self.degree, self.features)
        self.register_buffer("running_mean", torch.zeros(stat, **kw))
        self.register_buffer("running_var", torch.ones(stat, **kw))
        w = torch.zeros(self.degree, **kw)
        w[0] = 1.0
        if channels is None:
            self.weight = nn.Parameter(w)
            self.bias = nn.Parameter(torch.zeros((), **kw))
        else:
            self.weight = nn.Parameter(w.expand(channels, -1).clone())
            self.bias = nn.Parameter(torch.zeros(channels, **kw))

    def _powers(self, x: torch.Tensor) -> list[torch.Tensor]:
        p = [x]
        for _ in range(self.degree - 1):
            p.append(p[-1] * x)
        return p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.degree
        if self.features is None:
            flat = torch.stack(self._powers(x.reshape(-1)), dim=1)  # [M, d]: BN over d "channels"
            z = nn.functional.batch_norm(flat, self.running_mean, self.running_var, None, None,
                                         self.training, self.momentum, self.eps)
            return (z @ self.weight).reshape(x.shape) + self.bias
        if x.dim() < 2 or x.shape[1] != self.features:
            raise ValueError(f"expected input [N, {self.features}, *], got shape {tuple(x.shape)}")
        n, f, rest = x.shape[0], x.shape[1], x.shape[2:]
        p = torch.stack(self._powers(x), dim=1)  # [N, d, F, *]
        z = nn.functional.batch_norm(p.reshape(n, d * f, *rest), self.running_mean.view(-1),
                                     self.running_var.view(-1), None, None, self.training, self.momentum,
                                     self.eps).reshape(p.shape)
        tail = (1,) * len(rest)
        if self.channels is None:
            return (z * self.weight.view(1, d, 1, *tail)).sum(1) + self.bias
        w = self.weight.t().reshape(1, d, f, *tail)
        return (z * w).sum(1) + self.bias.view(1, f, *tail)

    def polynomial(self, feature: int | None = None, interval=(-3.0, 3.0)) -> SlafPolynomial:
        """The eval-mode map of one feature (running statistics) as a power-basis polynomial in raw x:
        sum_j w_j (x**j - mu_j) / sqrt(var_j + eps) + b. `interval` only labels the polynomial."""
        mu = self.running_mean.detach().cpu().double()
        sd = (self.running_var.detach().cpu().double() + self.eps).sqrt()
        w = self.weight.detach().cpu().double()
        b = self.bias.detach().cpu().double()
        if self.features is not None:
            if feature is None or not 0 <= feature < self.features:
                raise ValueError(f"this NormalisedSLAF has {self.features} features: name one in "
                                 f"0..{self.features - 1}")
            mu, sd = mu[:, feature], sd[:, feature]
            if self.channels is not None:
                w, b = w[feature], b[feature]
        c = w / sd
        coef = [float(b - (c * mu).sum())] + c.tolist()
        return SlafPolynomial("power", tuple(coef), interval, "raw")

    def extra_repr(self) -> str:
        ch = f", channels={self.channels}" if self.channels else ""
        return f"degree={self.degree}, features={self.features}{ch}, eps={self.eps}, momentum={self.momentum}"
