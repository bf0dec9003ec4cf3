"""Whitelisted formulas for activation functions, evaluated with numpy, torch or mpmath.

A formula such as ``"0.5*x*erfc(-x/sqrt(2))"`` is parsed once with :mod:`ast` and checked
against a small whitelist; nothing is ever passed to ``eval``.  The checked tree is then
interpreted by one of three backends:

* :meth:`Expression.numpy` -- float64, vectorised, floating-point warnings suppressed;
* :meth:`Expression.torch` -- any float dtype, differentiable (``where`` never lets the
  gradient of an unused, overflowing branch turn into NaN);
* :meth:`Expression.mpmath` -- arbitrary precision reference values at the current ``mp.dps``.

Allowed syntax: the variable ``x``; declared parameter names; numeric literals; the
operators ``+ - * / **`` and unary ``-``; the constants ``pi`` and ``e``; the functions in
:data:`FUNCTIONS`; comparisons ``< <= > >=`` only as the first argument of ``where``.
:func:`constant` evaluates expressions without ``x`` (complex literals such as ``1j`` are
allowed there), for catalogue fields such as Lipschitz constants and singularities.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import mpmath
import numpy as np

__all__ = ["CONSTANTS", "FUNCTIONS", "FUNCTION_DOCS", "OPERATORS", "RESERVED_NAMES", "Expression", "constant"]

#: Allowed functions: name -> (number of arguments, meaning).  Every function has the same meaning
#: (real principal branch) in numpy, torch and mpmath; the catalogue page is generated from this table.
FUNCTION_DOCS: dict[str, tuple[int, str]] = {
    "exp": (1, "e**v"),
    "expm1": (1, "e**v - 1, accurate near 0"),
    "log": (1, "natural logarithm (v > 0)"),
    "log1p": (1, "log(1 + v), accurate near 0"),
    "sqrt": (1, "square root (v >= 0)"),
    "abs": (1, "|v| (a kink where v changes sign)"),
    "sin": (1, "sine"),
    "cos": (1, "cosine"),
    "tan": (1, "tangent"),
    "atan": (1, "inverse tangent, values in (-pi/2, pi/2)"),
    "sinh": (1, "hyperbolic sine"),
    "cosh": (1, "hyperbolic cosine"),
    "tanh": (1, "hyperbolic tangent"),
    "asinh": (1, "inverse hyperbolic sine"),
    "erf": (1, "error function"),
    "erfc": (1, "complementary error function 1 - erf(v), accurate for large v"),
    "sigmoid": (1, "1/(1 + e**-v), evaluated without overflow"),
    "softplus": (1, "log(1 + e**v), evaluated without overflow"),
    "maximum": (2, "the larger of a and b (a kink where a = b)"),
    "minimum": (2, "the smaller of a and b (a kink where a = b)"),
    "clip": (3, "minimum(maximum(v, lo), hi) (kinks where v = lo and v = hi)"),
    "where": (3, "where(a < b, u, v): u where the comparison holds, else v (< <= > >=); a kink "
                 "where a = b"),
}
#: Allowed functions and their number of arguments.
FUNCTIONS: dict[str, int] = {name: nargs for name, (nargs, _) in FUNCTION_DOCS.items()}
#: Functions whose result is not analytic where one of their arguments (or a difference of two) is 0:
#: name -> the argument combinations whose sign changes mark candidate kinks.
_SWITCHES: dict[str, tuple[tuple[int, ...], ...]] = {
    "abs": ((0,),), "sqrt": ((0,),), "maximum": ((0, 1),), "minimum": ((0, 1),), "clip": ((0, 1), (0, 2)),
}
#: Named constants.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
#: Names a parameter may not take.
RESERVED_NAMES = frozenset({"x", *CONSTANTS, *FUNCTIONS})

#: Operators, for the catalogue page.
OPERATORS = ("+", "-", "*", "/", "**", "unary -", "< <= > >= (only as the first argument of where)")

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_OPERATOR = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             "**": operator.pow, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_MAX_LENGTH = 4000
_MAX_DEPTH = 60


# --------------------------------------------------------------------------------------------
# Parsing and checking
# --------------------------------------------------------------------------------------------
# The checked tree is made of tuples:
#   ("x",)  ("param", name)  ("num", float_or_complex, literal_text)  ("const", name)
#   ("neg", a)  ("bin", op, a, b)  ("cmp", op, a, b)  ("call", name, (args...))


def _check_parameter_names(params: Iterable[str], where: str) -> tuple[str, ...]:
    names = tuple(params)
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"{where}: parameter name {name!r} is not a valid identifier")
        if name in RESERVED_NAMES:
            raise ValueError(f"{where}: parameter name {name!r} is reserved; reserved names: "
                             f"{', '.join(sorted(RESERVED_NAMES))}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: duplicate parameter names in {names}")
    return names


class _Checker:
    """Turns Python's syntax tree into the whitelisted tuple tree, or raises ValueError."""

    def __init__(self, text: str, params: tuple[str, ...], where: str, is_constant: bool):
        self.text, self.params, self.where, self.is_constant = text, params, where, is_constant

    def allowed(self) -> str:
        variables = "no variable (constant expression)" if self.is_constant else "variable x"
        params = ", ".join(self.params) if self.params else "none"
        literals = "real and imaginary (1j)" if self.is_constant else "real"
        return (f"allowed: {variables}; parameters: {params}; constants: {', '.join(CONSTANTS)}; "
                f"{literals} numeric literals; operators + - * / ** and unary -; functions: "
                f"{', '.join(FUNCTIONS)}; comparisons < <= > >= only as first argument of where")

    def fail(self, problem: str) -> None:
        raise ValueError(f"{self.where}: {problem} in {self.text!r}; {self.allowed()}")

    def literal(self, node: ast.Constant) -> tuple:
        value = node.value
        segment = ast.get_source_segment(self.source, node) or repr(value)
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            self.fail(f"literal {segment} is not allowed")
        if isinstance(value, complex):
            if not self.is_constant:
                self.fail(f"complex literal {segment} is not allowed (only in constants)")
            return ("num", value, segment)
        if isinstance(value, int):
            segment = str(value)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self.fail(f"literal {segment} is not a finite float64 number")
        return ("num", number, segment)

    def convert(self, node: ast.AST, depth: int = 0, condition: bool = False) -> tuple:
        if depth > _MAX_DEPTH:
            self.fail(f"nesting deeper than {_MAX_DEPTH} levels")
        depth += 1
        if isinstance(node, ast.Constant):
            return self.literal(node)
        if isinstance(node, ast.Name):
            name = node.id
            if name == "x" and not self.is_constant:
                return ("x",)
            if name in self.params:
                return ("param", name)
            if name in CONSTANTS:
                return ("const", name)
            if name in FUNCTIONS:
                self.fail(f"function name {name!r} used without a call")
            self.fail(f"unknown name {name!r}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return ("neg", self.convert(node.operand, depth))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return ("bin", _BINOPS[type(node.op)], self.convert(node.left, depth),
                    self.convert(node.right, depth))
        if isinstance(node, ast.Compare):
            if not condition:
                self.fail("comparison outside the first argument of where(...)")
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARISONS:
                self.fail("only a single comparison < <= > >= is allowed")
            return ("cmp", _COMPARISONS[type(node.ops[0])], self.convert(node.left, depth),
                    self.convert(node.comparators[0], depth))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Attribute):
            self.fail(f"attribute access '.{node.attr}'")
        self.fail(f"syntax {type(node).__name__} ({ast.get_source_segment(self.source, node)!r})")
        raise AssertionError("unreachable")

    def call(self, node: ast.Call, depth: int) -> tuple:
        if not isinstance(node.func, ast.Name):
            self.fail(f"call of {ast.get_source_segment(self.source, node.func)!r}")
        name = node.func.id
        if name not in FUNCTIONS:
            self.fail(f"unknown function {name!r}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(f"keyword or starred arguments to {name}()")
        if len(node.args) != FUNCTIONS[name]:
            self.fail(f"{name}() takes {FUNCTIONS[name]} argument(s), got {len(node.args)}")
        args = [self.convert(arg, depth, condition=(name == "where" and i == 0))
                for i, arg in enumerate(node.args)]
        if name == "where" and args[0][0] != "cmp":
            self.fail("the first argument of where(...) must be a comparison")
        return ("call", name, tuple(args))

    def run(self) -> tuple:
        if not isinstance(self.text, str):
            raise ValueError(f"{self.where}: expected an expression string, got {self.text!r}")
        if not self.text.strip():
            raise ValueError(f"{self.where}: empty expression")
        if len(self.text) > _MAX_LENGTH:
            raise ValueError(f"{self.where}: expression longer than {_MAX_LENGTH} characters")
        # Parentheses allow formulas spread over several lines (TOML multi-line strings).
        self.source = "(" + self.text.strip() + "\n)"
        try:
            tree = ast.parse(self.source, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise ValueError(f"{self.where}: cannot parse {self.text!r}: {exc}; {self.allowed()}") from None
        return self.convert(tree.body)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------
def _scipy_special() -> Any:
    import scipy.special

    return scipy.special


def _np_sigmoid(v: Any) -> np.ndarray:
    # exp(-|v|) never overflows; 1/(1+z) for v >= 0 and z/(1+z) for v < 0 are both accurate.
    v = np.asarray(v, dtype=np.float64)
    z = np.exp(-np.abs(v))
    s = 1.0 / (1.0 + z)
    return np.where(v >= 0, s, z * s)


def _np_softplus(v: Any) -> np.ndarray:
    # softplus(v) = max(v, 0) + log1p(exp(-|v|)); both terms are >= 0, so no cancellation.
    v = np.asarray(v, dtype=np.float64)
    return np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v)))


_NUMPY_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt,
    "abs": np.abs, "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "tan": np.tan, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh,
    "erf": lambda v: _scipy_special().erf(v), "erfc": lambda v: _scipy_special().erfc(v),
    "sigmoid": _np_sigmoid, "softplus": _np_softplus,
    "maximum": np.maximum, "minimum": np.minimum, "clip": lambda v, lo, hi: np.minimum(np.maximum(v, lo), hi),
}


def _mp_guarded(name: str, function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Refuse arguments above 2**256 in modulus: mpmath would need that many digits of pi or log(2)
    to reduce them (10**10**10**10 would never finish), while real formulas stay far below."""

    def guarded(v: Any) -> Any:
        if mpmath.isfinite(v) and mpmath.mag(v) > 256:
            raise ValueError(f"argument {mpmath.nstr(v, 5)} of {name}() is too large")
        return function(v)

    return guarded


def _mp_power(a: Any, b: Any) -> Any:
    if mpmath.isfinite(b) and mpmath.mag(b) > 256:
        raise ValueError(f"exponent {mpmath.nstr(b, 5)} is too large")
    return a**b


def _mp_max(a: Any, b: Any) -> Any:
    return a if a >= b else b


def _mp_min(a: Any, b: Any) -> Any:
    return a if a <= b else b


def _mp_sigmoid(v: Any) -> Any:
    return 1 / (1 + mpmath.exp(-v))


def _mp_softplus(v: Any) -> Any:
    return mpmath.log1p(mpmath.exp(v))


_MPMATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{name: _mp_guarded(name, f) for name, f in (
        ("exp", mpmath.exp), ("expm1", mpmath.expm1), ("tanh", mpmath.tanh), ("sin", mpmath.sin),
        ("cos", mpmath.cos), ("tan", mpmath.tan), ("sinh", mpmath.sinh), ("cosh", mpmath.cosh),
        ("erf", mpmath.erf), ("erfc", mpmath.erfc), ("sigmoid", _mp_sigmoid),
        ("softplus", _mp_softplus))},
    "log": mpmath.log, "log1p": mpmath.log1p, "sqrt": mpmath.sqrt, "abs": abs, "atan": mpmath.atan,
    "asinh": mpmath.asinh,
    "maximum": _mp_max, "minimum": _mp_min, "clip": lambda v, lo, hi: _mp_min(_mp_max(v, lo), hi),
}


def _torch_functions() -> dict[str, Callable[..., Any]]:
    import torch

    def as_tensor(value: Any, like: Any) -> Any:
        return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=like.dtype,
                                                                               device=like.device)

    def neg_abs(v: Any) -> Any:
        # -|v| whose derivative at 0 is -1 (not abs's 0), so sigmoid'(0) and softplus'(0) come out right.
        return torch.where(v >= 0, -v, v)

    def sigmoid(v: Any) -> Any:
        z = torch.exp(neg_abs(v))
        s = 1 / (1 + z)
        return torch.where(v >= 0, s, z * s)

    def softplus(v: Any) -> Any:
        return torch.where(v >= 0, v, torch.zeros_like(v)) + torch.log1p(torch.exp(neg_abs(v)))

    def maximum(a: Any, b: Any) -> Any:
        like = a if isinstance(a, torch.Tensor) else b
        return torch.maximum(as_tensor(a, like), as_tensor(b, like))

    def minimum(a: Any, b: Any) -> Any:
        like = a if isinstance(a, torch.Tensor) else b
        return torch.minimum(as_tensor(a, like), as_tensor(b, like))

    return {
        "exp": torch.exp, "expm1": torch.expm1, "log": torch.log, "log1p": torch.log1p,
        "sqrt": torch.sqrt, "abs": torch.abs, "tanh": torch.tanh, "sin": torch.sin, "cos": torch.cos,
        "tan": torch.tan, "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh, "asinh": torch.asinh,
        "erf": torch.special.erf, "erfc": torch.special.erfc, "sigmoid": sigmoid, "softplus": softplus,
        "maximum": maximum, "minimum": minimum, "clip": lambda v, lo, hi: minimum(maximum(v, lo), hi),
    }


class _Numpy:
    functions = _NUMPY_FUNCTIONS

    # Scalars are numpy floats, so that 10**10**10 or 1/0 give inf (caught by the finiteness checks)
    # instead of raising OverflowError or ZeroDivisionError as Python floats do.
    @staticmethod
    def constant(name: str) -> Any:
        return np.float64(CONSTANTS[name])

    @staticmethod
    def number(node: tuple) -> Any:
        return np.float64(node[1])

    @staticmethod
    def where(evaluate: Callable, x: Any, cond: tuple, a: tuple, b: tuple) -> Any:
        # Both branches are evaluated everywhere; np.where picks per element, so an overflowing
        # unused branch never reaches the result (warnings are suppressed by the caller).
        return np.where(evaluate(cond, x), evaluate(a, x), evaluate(b, x))


def _not_analytic(name: str) -> Callable[..., Any]:
    def refuse(*args: Any) -> Any:
        raise ValueError(f"{name}() is not analytic: the formula has no complex extension")

    return refuse


class _NumpyComplex(_Numpy):
    """complex128 values of the analytic continuation (principal branches) off the real axis."""

    functions: dict[str, Callable[..., Any]] = {
        **_NUMPY_FUNCTIONS,
        "expm1": lambda v: np.exp(v) - 1, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "softplus": lambda v: np.log1p(np.exp(v)),
        **{name: _not_analytic(name) for name in ("abs", "maximum", "minimum", "clip")},
    }

    @staticmethod
    def where(evaluate: Callable, x: Any, cond: tuple, a: tuple, b: tuple) -> Any:
        raise ValueError("where() is not analytic: the formula has no complex extension")


class _Mpmath:
    functions = _MPMATH_FUNCTIONS

    @staticmethod
    def binary(op: str, a: Any, b: Any) -> Any:
        return _mp_power(a, b) if op == "**" else _OPERATOR[op](a, b)

    @staticmethod
    def constant(name: str) -> Any:
        return +mpmath.pi if name == "pi" else +mpmath.e

    @staticmethod
    def number(node: tuple) -> Any:
        value, text = node[1], node[2].replace("_", "")
        try:
            if isinstance(value, complex):
                return mpmath.mpc(0, mpmath.mpf(text.rstrip("jJ")))
            return mpmath.mpf(text)  # decimal text, so 0.044715 means exactly that at any precision
        except (ValueError, TypeError):
            return mpmath.mpmathify(value)

    @staticmethod
    def where(evaluate: Callable, x: Any, cond: tuple, a: tuple, b: tuple) -> Any:
        try:
            chosen = bool(evaluate(cond, x))
        except TypeError as exc:  # comparison of complex numbers
            raise ValueError(f"where(...) needs a real condition: {exc}") from None
        return evaluate(a if chosen else b, x)


class _Torch:
    constant = staticmethod(CONSTANTS.__getitem__)

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.functions = {name: self._scalar_fallback(name, f) for name, f in _torch_functions().items()}

    def _scalar_fallback(self, name: str, tensor_function: Callable) -> Callable:
        numpy_function = _NUMPY_FUNCTIONS[name]

        def function(*args: Any) -> Any:
            if any(isinstance(a, self.torch.Tensor) for a in args):
                return tensor_function(*args)
            return _numpy_scalar(numpy_function, *args)  # constant sub-expression, in float64

        return function

    @staticmethod
    def number(node: tuple) -> Any:
        return node[1]

    def where(self, evaluate: Callable, x: Any, cond: tuple, a: tuple, b: tuple) -> Any:
        torch = self.torch
        mask = evaluate(cond, x)
        if not isinstance(mask, torch.Tensor):
            return evaluate(a if bool(mask) else b, x)
        if not isinstance(x, torch.Tensor) or mask.shape != x.shape or x.numel() == 0:
            like = x if isinstance(x, torch.Tensor) else mask
            return torch.where(mask, self._tensor(evaluate(a, x), like), self._tensor(evaluate(b, x), like))
        if bool(mask.all()):
            return evaluate(a, x)
        if not bool(mask.any()):
            return evaluate(b, x)
        # Evaluate each branch only at points where it is selected: the other entries are
        # replaced by one such point (detached).  The branches are element-wise functions of x,
        # so an unused branch can neither overflow nor send 0 * inf = NaN into the gradient.
        plain = x.detach()
        x_a = torch.where(mask, x, plain[mask][0])
        x_b = torch.where(mask, plain[~mask][0], x)
        return torch.where(mask, self._tensor(evaluate(a, x_a), x), self._tensor(evaluate(b, x_b), x))

    def _tensor(self, value: Any, like: Any) -> Any:
        """Python scalars become tensors of the input's float dtype (torch.where would use float32)."""
        if isinstance(value, self.torch.Tensor):
            return value
        dtype = like.dtype if like.dtype.is_floating_point else self.torch.get_default_dtype()
        return self.torch.as_tensor(value, dtype=dtype, device=like.device)

    def binary(self, op: str, a: Any, b: Any) -> Any:
        if isinstance(a, self.torch.Tensor) or isinstance(b, self.torch.Tensor):
            return _OPERATOR[op](a, b)
        return _numpy_scalar(_OPERATOR[op], a, b)


def _numpy_scalar(function: Callable, *args: Any) -> Any:
    with np.errstate(all="ignore"):
        result = function(*(np.float64(a) for a in args))
    return bool(result) if isinstance(result, (bool, np.bool_)) else float(result)


def _evaluate(tree: tuple, x: Any, params: Mapping[str, Any], backend: Any) -> Any:
    def evaluate(node: tuple, x: Any) -> Any:
        tag = node[0]
        if tag == "x":
            return x
        if tag == "param":
            return params[node[1]]
        if tag == "num":
            return backend.number(node)
        if tag == "const":
            return backend.constant(node[1])
        if tag == "neg":
            return -evaluate(node[1], x)
        if tag in ("bin", "cmp"):
            a, b = evaluate(node[2], x), evaluate(node[3], x)
            binary = getattr(backend, "binary", None)
            return binary(node[1], a, b) if binary else _OPERATOR[node[1]](a, b)
        name, args = node[1], node[2]
        if name == "where":
            return backend.where(evaluate, x, *args)
        return backend.functions[name](*(evaluate(arg, x) for arg in args))

    return evaluate(tree, x)


_TORCH_BACKEND: list[_Torch] = []


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
class Expression:
    """A whitelisted formula in ``x`` and named parameters, compiled once from text.

    >>> Expression("x*sigmoid(beta*x)", ["beta"]).numpy(np.array([0.0, 1.0]), beta=1.0)
    array([0.        , 0.73105858])

    Raises ValueError (naming ``where``, the offending token and the allowed names) for
    anything outside the whitelist.  ``constant=True`` compiles an expression without ``x``
    in which imaginary literals are allowed (see :func:`constant`).
    """

    def __init__(self, text: str, params: Iterable[str] = (), *, where: str = "expression",
                 constant: bool = False):
        self.params = _check_parameter_names(params, where)
        self.where = where
        self._tree = _Checker(text, self.params, where, constant).run()
        self.text = text.strip()
        self.is_constant = constant

    def __repr__(self) -> str:
        params = f", {list(self.params)!r}" if self.params else ""
        return f"Expression({self.text!r}{params})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Expression) and (self.text, self.params, self.is_constant)
                == (other.text, other.params, other.is_constant))

    def __hash__(self) -> int:
        return hash((self.text, self.params, self.is_constant))

    def _bind(self, params: Mapping[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(self.params))
        missing = sorted(set(self.params) - set(params))
        if unknown or missing:
            allowed = ", ".join(self.params) or "none"
            problem = f"unknown parameter(s) {unknown}" if unknown else f"missing parameter(s) {missing}"
            raise ValueError(f"{self.where}: {problem} for {self.text!r}; parameters: {allowed}")
        return {name: convert(value) for name, value in params.items()}

    def numpy(self, x: Any, **params: Any) -> np.ndarray:
        """Float64 values at the points ``x`` (array of the same shape; 0-d for a scalar)."""
        x = np.asarray(x, dtype=np.float64)
        bound = self._bind(params, lambda v: np.asarray(v, dtype=np.float64))
        with np.errstate(all="ignore"):
            result = np.asarray(_evaluate(self._tree, x, bound, _Numpy), dtype=np.float64)
        if result.shape != x.shape:
            result = np.broadcast_to(result, np.broadcast_shapes(result.shape, x.shape)).copy()
        return result

    def switching_functions(self) -> list[Callable[..., np.ndarray]]:
        """Functions g(x, **params) (float64, vectorised) whose sign changes are the candidate kinks.

        One per argument of ``abs`` and ``sqrt``, per difference of the two arguments of ``maximum``
        and ``minimum`` and of a ``where`` comparison, and two per ``clip`` (v - lo, v - hi): the
        formula can fail to be analytic only where one of them is 0.
        """
        trees: list[tuple] = []

        def walk(node: tuple) -> None:
            if node[0] == "call":
                name, args = node[1], node[2]
                if name == "where":
                    trees.append(("bin", "-", args[0][2], args[0][3]))
                for combination in _SWITCHES.get(name, ()):
                    trees.append(args[combination[0]] if len(combination) == 1 else
                                 ("bin", "-", args[combination[0]], args[combination[1]]))
            for child in node[1:]:
                if isinstance(child, tuple) and child and isinstance(child[0], str):
                    walk(child)
                elif isinstance(child, tuple):
                    for grandchild in child:
                        if isinstance(grandchild, tuple):
                            walk(grandchild)

        walk(self._tree)

        def numpy_function(tree: tuple) -> Callable[..., np.ndarray]:
            def g(x: Any, **params: Any) -> np.ndarray:
                x = np.asarray(x, dtype=np.float64)
                bound = self._bind(params, lambda v: np.asarray(v, dtype=np.float64))
                with np.errstate(all="ignore"):
                    value = np.asarray(_evaluate(tree, x, bound, _Numpy), dtype=np.float64)
                return np.broadcast_to(value, x.shape)

            return g

        return [numpy_function(tree) for tree in trees]

    def complex(self, z: Any, **params: Any) -> np.ndarray:
        """complex128 values of the formula's analytic continuation at the points ``z`` (principal
        branches); ValueError for a formula using abs, maximum, minimum, clip or where."""
        z = np.asarray(z, dtype=np.complex128)
        bound = self._bind(params, lambda v: np.asarray(v, dtype=np.float64))
        with np.errstate(all="ignore"):
            result = np.asarray(_evaluate(self._tree, z, bound, _NumpyComplex), dtype=np.complex128)
        return np.broadcast_to(result, z.shape).copy()

    def torch(self, x: Any, **params: Any) -> Any:
        """Values as a torch tensor of the dtype of ``x`` (float64 if ``x`` is not a tensor)."""
        import torch

        if not _TORCH_BACKEND:
            _TORCH_BACKEND.append(_Torch())
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.float64)
        bound = self._bind(params, lambda v: v if isinstance(v, torch.Tensor) else float(v))
        result = _evaluate(self._tree, x, bound, _TORCH_BACKEND[0])
        if not isinstance(result, torch.Tensor):
            result = torch.as_tensor(result, dtype=x.dtype, device=x.device)
        if result.shape != x.shape:
            result = result.expand(torch.broadcast_shapes(result.shape, x.shape)).clone()
        return result

    def mpmath(self, x: Any, **params: Any) -> Any:
        """Value at the mpmath number ``x`` (real or complex), rounded to the current ``mp.dps``.

        Evaluated with 20 guard bits; ``where`` evaluates only the chosen branch.
        """
        x = None if x is None else mpmath.mpmathify(x)
        with mpmath.mp.extraprec(20):
            bound = self._bind(params, mpmath.mpmathify)
            result = _evaluate(self._tree, x, bound, _Mpmath)
        return +result


def constant(text: Any, params: Mapping[str, float] = {}, *, where: str = "constant") -> complex | float:
    """Evaluate a constant expression such as ``"pi/2*1j"`` or ``"maximum(1, abs(alpha))"``.

    Numbers (int or float, not bool) are returned as float.  Evaluation uses mpmath at 30
    digits, then rounds to float (or complex when the imaginary part is non-zero).  Raises
    ValueError naming ``where`` for disallowed syntax or a non-finite or undefined value.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value: Any = float(text)
    else:
        expression = Expression(text, params.keys(), where=where, constant=True)
        try:
            with mpmath.mp.workdps(30):
                value = expression.mpmath(None, **params)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ValueError(f"{where}: cannot evaluate {text!r}: {str(exc) or type(exc).__name__}") from None
        is_complex = isinstance(value, mpmath.mpc) and value.imag != 0
        value = complex(value) if is_complex else float(mpmath.re(value))
    if not (math.isfinite(value.real) and math.isfinite(value.imag)):
        raise ValueError(f"{where}: {text!r} evaluates to the non-finite value {value}")
    return value
