"""The problem families by name: which data set samples the problems and which optimizee trains on them."""
from __future__ import annotations

from typing import Sequence

from .mnist1d import ACTIVATION, BATCH_SIZE, HIDDEN, MNIST1DProblems, mlp_optimizee
from .problems import Optimizee
from .quadratic import QuadraticProblems, quadratic_optimizee

PROBLEM_DATASETS = {
    "quadratic": "random 10-d quadratics ||W theta - y||^2 (Andrychowicz et al. 2016): problems for learned optimizers (algorithm l2o)",
    "mnist1d": "MNIST-1D classification problems (40-d, 10 classes, generated locally) for an MLP optimizee (algorithm l2o)",
}
OPTIMIZEES = {"quadratic": "quadratic", "mlp": "mnist1d"}  # optimizee -> the data set of its problems


def problem_source(dataset: str, part: str):
    """The problem source of ``dataset`` for ``part`` (``"train"``, ``"val"``, ``"test"``)."""
    if dataset == "quadratic":
        return QuadraticProblems(part)
    if dataset == "mnist1d":
        return MNIST1DProblems(part)
    raise ValueError(f"unknown problem data set {dataset!r}; choose one of {sorted(PROBLEM_DATASETS)}")


def build_optimizee(name: str, hidden: Sequence[int] | None = None, activation: str | None = None,
                    batch_size: int | None = None) -> Optimizee:
    """The optimizee ``name`` (``"quadratic"`` or ``"mlp"``); ``hidden``, ``activation`` and
    ``batch_size`` are the MLP's (default 20 sigmoid units, batches of 128) and errors for the quadratic."""
    if name == "quadratic":
        given = [k for k, v in (("optimizee_hidden", hidden), ("activation", activation), ("batch_size", batch_size)) if v is not None]
        if given:
            raise ValueError(f"the quadratic optimizee has no {', '.join(given)} (it is a 10-d vector, trained on the whole "
                             f"objective); drop them or use optimizee = \"mlp\"")
        return quadratic_optimizee()
    if name == "mlp":
        return mlp_optimizee(HIDDEN if hidden is None else hidden, activation or ACTIVATION, batch_size or BATCH_SIZE)
    raise ValueError(f"unknown optimizee {name!r}; choose one of {sorted(OPTIMIZEES)}")
