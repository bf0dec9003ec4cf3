"""The rational activation P(x) / (1 + |Q(x)|) as a Padé activation unit evaluates it, in plain torch.

P = sum_j a_j x^j and Q = q_0 + x (b_1 + b_2 x + ... + b_k x^(k-1)), both by Horner's rule in the raw x,
each operation in the tensors' dtype. PAU (Molina et al., ICLR 2020) has q_0 = 0 and the "safe"
denominator 1 + |Q| (the |.| around the whole sum, as slaf_approx.rational's form "pau"); ``safe=False``
gives the standard form 1 + Q. One copy: the benchmarks time it and :mod:`slaf_approx.precision` measures
its error in a dtype with it.
"""

from __future__ import annotations


def horner(x, a):
    """sum_k a_k x^k by Horner's rule: K - 1 multiply-adds on whole tensors."""
    if a.shape[0] == 1:
        return a[0] + 0 * x
    y = a[-1] * x + a[-2]
    for k in range(a.shape[0] - 3, -1, -1):
        y = y * x + a[k]
    return y


def pau(x, a, b, q0: float = 0.0, safe: bool = True):
    """P(x) / (1 + |q0 + x (b_1 + b_2 x + ... + b_k x^(k-1))|), P = sum_j a_j x^j (PAU's safe denominator);
    with ``safe=False`` the denominator is 1 + Q without the absolute value."""
    q = x * horner(x, b) if b.shape[0] else 0 * x
    if q0:
        q = q + q0
    return horner(x, a) / (1.0 + (q.abs() if safe else q))
