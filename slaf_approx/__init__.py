"""slaf-approx: how well do Self-Learnable Activation Functions approximate standard activations?

The library's layers, lowest first (see ARCHITECTURE.md): targets, bases -> norms -> remez, ratfun ->
problem -> rational -> fit -> sweep, theory, coefstore, nn -> report -> cli. Import what you need from here.
"""

from .bases import BASES, MAX_DEGREE, SlafPolynomial, get_basis
from .fit import METHODS, ConditioningWarning, FitRecord, fit
from .problem import FitProblem, FunctionTarget
from .targets import Target, get_target, load_catalogue, target_names

__all__ = [
    "BASES", "MAX_DEGREE", "METHODS", "ConditioningWarning", "FitProblem", "FitRecord", "FunctionTarget",
    "SlafPolynomial", "Target",
    "fit", "get_basis", "get_target", "load_catalogue", "target_names",
]
__version__ = "0.1.0"
