"""ALSTMNet: a recurrent network with temporal attention (Qlib's ``ALSTMModel``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from alstm.model.activations import tanh
from alstm.model.cpu_attention import attention_head, cpu_attention_applies
from alstm.model.cpu_gru import cpu_gru_applies, gru_forward
from alstm.model.cpu_projection import project
from alstm.model.kernels import compiled_here

RNN_TYPES = ("GRU", "LSTM")
#: What the output layer reads: ``"both"`` (Qlib's ``concat(last step, attention-pooled)``),
#: ``"last"`` (the last step only, a plain GRU/LSTM head) or ``"attention"`` (pooled only).
HEADS = ("both", "last", "attention")
#: Number formats of the GRU's matrix products (``cpu_gru.gru_forward``'s ``bf16``).
PRECISIONS = ("float32", "bfloat16")

#: Qlib ``ALSTMModel`` state_dict key prefix → ALSTMNet key prefix (the recurrent layer's keys,
#: ``rnn.weight_ih_l0`` …, are the same on both sides).
QLIB_KEY_MAP = {
    "net.fc_in.": "input_proj.",
    "rnn.": "rnn.",
    "fc_out.": "head.",
    "att_net.att_fc_in.": "att_hidden.",
    "att_net.att_fc_out.": "att_score.",
}


class ALSTMNet(nn.Module):
    """Per-step ``Linear(d_feat→h) → Tanh``, a ``num_layers``-layer GRU or LSTM, attention pooling
    over time, and ``Linear(2h→1)`` on ``concat(last step, pooled)``.

    Submodules are created in the order Qlib creates them, so the same torch seed gives the same
    initial weights as Qlib's ``ALSTMModel``. Internally time-major (``[T, B, ·]``, the layout
    the recurrence runs in); a float32 GRU on the CPU runs through ``cpu_gru``, and on one CPU
    thread the input projection and the attention and output layers through ``cpu_projection``
    and ``cpu_attention`` (faster, same math).
    ``head`` (an ablation, see ``HEADS``): ``"last"`` and ``"attention"`` use ``Linear(h→1)``;
    ``"last"`` creates no attention layers and reports all attention on the last step (the only
    one its output reads).
    ``precision``: ``"bfloat16"`` runs the GRU's matrix products on bfloat16 operands with
    float32 sums (``cpu_gru``: a GRU on the CPU, without dropout between layers in training).
    """

    def __init__(
        self,
        d_feat: int = 6,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        rnn_type: str = "GRU",
        head: str = "both",
        precision: str = "float32",
    ) -> None:
        super().__init__()
        rnn_class = {"GRU": nn.GRU, "LSTM": nn.LSTM}.get(str(rnn_type).upper())
        if rnn_class is None:
            raise ValueError(f"unknown rnn_type {rnn_type!r}; valid: {', '.join(RNN_TYPES)}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        self.head_type = head
        self.precision = precision
        self.input_proj = nn.Linear(d_feat, hidden_size)
        self.rnn = rnn_class(hidden_size, hidden_size, num_layers=num_layers, dropout=dropout)
        self.head = nn.Linear((2 if head == "both" else 1) * hidden_size, 1)
        if head != "last":
            self.att_hidden = nn.Linear(hidden_size, hidden_size // 2)
            self.att_dropout = nn.Dropout(dropout)
            self.att_score = nn.Linear(hidden_size // 2, 1, bias=False)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[B]`` for features ``x`` ``[B, T, d_feat]`` (with attention weights ``[B, T]``,
        summing to 1 over time, when ``return_attention``)."""
        if compiled_here(x):
            z = project(x, self.input_proj)  # [T, B, h]
        else:
            z = tanh(self.input_proj(x.transpose(0, 1)))
        if cpu_gru_applies(self.rnn, z):
            out = gru_forward(self.rnn, z, bf16=self.precision == "bfloat16")
        elif self.precision != "float32":
            raise RuntimeError(
                f"precision={self.precision!r} needs a GRU on the CPU without dropout between "
                "layers in training (cpu_gru)"
            )
        else:
            out, _ = self.rnn(z)
        if self.head_type == "last":
            score = self.head(out[-1])[:, 0]
            if not return_attention:
                return score
            weights = torch.zeros(out.shape[1], out.shape[0], dtype=out.dtype, device=out.device)
            weights[:, -1] = 1.0
            return score, weights
        if cpu_attention_applies(out, self.att_dropout):
            score, weights = attention_head(out, self.att_hidden, self.att_score, self.head)
            return (score, weights.t()) if return_attention else score
        weights = torch.softmax(
            self.att_score(tanh(self.att_dropout(self.att_hidden(out)))), dim=0
        )  # [T, B, 1]
        # Σ_t weights_t · out_t as one batched product [B, 1, T] × [B, T, h]: with its backward,
        # 5-7 times faster than (out * weights).sum(0), whose broadcast multiply is slow
        pooled = torch.bmm(weights.permute(1, 2, 0), out.transpose(0, 1))[:, 0]
        features = torch.cat((out[-1], pooled), dim=1) if self.head_type == "both" else pooled
        score = self.head(features)[:, 0]
        return (score, weights[..., 0].t()) if return_attention else score

    def load_qlib_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a state_dict saved from Qlib's ``ALSTMModel`` (keys renamed by ``QLIB_KEY_MAP``)."""
        self.load_state_dict(qlib_to_alstm_keys(state))


def qlib_to_alstm_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a Qlib ``ALSTMModel`` state_dict to ALSTMNet's."""
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in QLIB_KEY_MAP if key.startswith(p)), None)
        if prefix is None:
            raise KeyError(f"{key!r} is not a Qlib ALSTMModel key; known prefixes: {QLIB_KEY_MAP}")
        renamed[QLIB_KEY_MAP[prefix] + key[len(prefix) :]] = value
    return renamed
