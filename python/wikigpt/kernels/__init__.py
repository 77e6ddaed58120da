"""Triton kernels for the GPT's hot spots, one op per file, each registered as a torch.library custom op so that
torch.compile calls it as one opaque op (Liger's plain autograd.Function crashed under compile).

The plain torch model (kernels off) is the reference; these ops must match it within the tolerances their tests state.
Without CUDA the kernels run in Triton's CPU interpreter (slow; for tests).
"""

from ._settings import INTERPRET
from .fused_linear_cross_entropy import fused_linear_cross_entropy
from .gelu_linear import gelu_linear
from .layer_norm import add_layer_norm, layer_norm

__all__ = ["INTERPRET", "add_layer_norm", "fused_linear_cross_entropy", "gelu_linear", "layer_norm"]
