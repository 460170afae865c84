"""Reading a trained LSTM optimizer out of a learnfast checkpoint (``learnfast train l2o-*`` or ``zoo/l2o-*``).

Only the LSTM's weights and its settings are read (safetensors: no code is executed), for the
paper's rule (``rule = "lstm"``) and the momentum-modulating one (``"momentum-lstm"``); anything
else, a checkpoint of another algorithm or of the learned-rates rule, is a clear error.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .lstm import HIDDEN, OUTPUT_SCALE, P, LSTMOptimizer
from .momentum_lstm import MomentumLSTM

FORMAT = "learnfast-checkpoint-1"  # = learnfast.train.checkpoint.FORMAT (a higher layer; a test keeps them equal)
PREFIX = "weights/network."


def load_lstm_optimizer(path: str | os.PathLike) -> LSTMOptimizer:
    """The trained :class:`LSTMOptimizer` of the checkpoint at ``path``, in eval mode, weights frozen."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no learned-optimizer checkpoint at {path}; pass zoo/l2o-quadratic.safetensors, "
                                f"zoo/l2o-mlp.safetensors or a run's best.safetensors")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            weights = {k[len(PREFIX):]: f.get_tensor(k) for k in f.keys() if k.startswith(PREFIX)}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is truncated or not a safetensors file ({err})") from err
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a learnfast checkpoint (format {metadata.get('format')!r})")
    try:
        algorithm = json.loads(metadata["meta"])["config"]["algorithm"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: its metadata holds no run config; use a checkpoint that `learnfast train` wrote") from err
    rule = algorithm.get("rule", "lstm")
    if algorithm.get("name") != "l2o" or rule not in ("lstm", "momentum-lstm"):
        kind = algorithm.get("name") if algorithm.get("name") != "l2o" else "l2o with learned rates"
        raise ValueError(f"{path} is a {kind!s} checkpoint, not an LSTM optimizer; pass an l2o checkpoint "
                         f"(zoo/l2o-quadratic.safetensors, zoo/l2o-mlp.safetensors, or a run of `learnfast train l2o-*`)")
    hidden, p = algorithm.get("lstm_hidden") or HIDDEN, algorithm.get("preprocess_p") or P
    if rule == "momentum-lstm":  # the starting rate is overwritten by the trained log_rate below
        network: LSTMOptimizer = MomentumLSTM(1.0, hidden, p=p)
    else:
        network = LSTMOptimizer(hidden, p=p, output_scale=algorithm.get("output_scale") or OUTPUT_SCALE)
    network.load_state_dict(weights)
    return network.eval().requires_grad_(False)
