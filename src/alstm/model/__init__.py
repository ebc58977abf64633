"""The ALSTM network, the model that trains it (one loop for both benchmarks), checkpoints and
the model registry."""

from alstm.model.alstm import ALSTM
from alstm.model.net import QLIB_KEY_MAP, ALSTMNet, qlib_to_alstm_keys
from alstm.model.registry import get_model, model_names, register_model

__all__ = [
    "ALSTM",
    "QLIB_KEY_MAP",
    "ALSTMNet",
    "get_model",
    "model_names",
    "qlib_to_alstm_keys",
    "register_model",
]
