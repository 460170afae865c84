"""Learned optimizers: the coordinate-wise LSTM optimizer, problem families, baselines.

``LSTMOptimizer`` (the network), ``MomentumLSTM`` (an LSTM that sets the step size of Nesterov
momentum per coordinate) and ``learned_rule`` (either as an ``(init, update)`` rule of
``learnfast.inner``); ``LearnedOptimizer`` (it as a ``torch.optim.Optimizer``); the problem
families (``QuadraticProblems``, ``MNIST1DProblems``, each with its ``Optimizee``);
``meta_gradient`` (truncated back-propagation through a run) and ``run``; the tuned baselines
(``BASELINES``, ``tune_lr``) and the comparison (``compare``, ``table``, ``plot``). The registered
algorithm that meta-trains them through the project's trainer is ``learnfast.algorithms.L2O``.

References:
    Andrychowicz et al. (2016). Learning to learn by gradient descent by gradient descent. NeurIPS.
"""
from .baselines import BASELINES, LR_GRID, nesterov, rmsprop, tune_lr
from .checkpoint import load_lstm_optimizer
from .compare import Curve, compare, plot, table
from .families import PROBLEM_DATASETS, build_optimizee, problem_source
from .lstm import LSTMOptimizer, LSTMState, learned_rule
from .momentum_lstm import MomentumLSTM, MomentumLSTMState
from .mnist1d import MNIST1DProblems, mlp_optimizee
from .optimizer import LearnedOptimizer
from .problems import Optimizee, problem_task
from .quadratic import Quadratic, QuadraticProblems, quadratic_optimizee
from .rates import CoordinateRates
from .unroll import MetaGradient, meta_gradient, run

__all__ = [
    "BASELINES", "CoordinateRates", "Curve", "LR_GRID", "LSTMOptimizer", "LSTMState", "LearnedOptimizer", "MNIST1DProblems",
    "MetaGradient", "MomentumLSTM", "MomentumLSTMState", "Optimizee", "PROBLEM_DATASETS", "Quadratic", "QuadraticProblems", "build_optimizee", "compare",
    "learned_rule", "load_lstm_optimizer", "meta_gradient", "mlp_optimizee", "nesterov", "plot", "problem_source",
    "problem_task", "quadratic_optimizee", "rmsprop", "run", "table", "tune_lr",
]
