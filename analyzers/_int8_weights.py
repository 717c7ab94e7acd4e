"""Weight-only int8 for the language model's linear layers: half the bytes a decode step reads.

Decoding one token reads every weight once, so its speed is bound by memory bandwidth: 13.2 GB of bf16 weights
take ~4 ms per token on an H100 however well the kernels run. Stored as int8 with one scale per output channel
(symmetric, round to nearest), the same layers read half that. Activations stay in the compute dtype; under
torch.compile the dequantization fuses into the matrix-vector kernel, so the int8 weights are what is read
(gpt-fast's "int8" mode). Per-channel int8 weight-only quantization of 7B Llama models is known to change
outputs very little; the vision tower and projector are left in the compute dtype (they run once per video).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Int8WeightOnlyLinear(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        weight = linear.weight.detach()
        scales = weight.float().abs().amax(dim=1).clamp(min=1e-8) / 127.0
        quantized = torch.round(weight.float() / scales[:, None]).clamp_(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", quantized)
        self.register_buffer("scales", scales.to(weight.dtype))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight.to(x.dtype)) * self.scales.to(x.dtype)
        return out if self.bias is None else out + self.bias.to(x.dtype)


def quantize_linears_int8(module: torch.nn.Module) -> int:
    """Replace every nn.Linear under `module` in place, one at a time (peak memory: one layer's float copy).
    Returns how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, Int8WeightOnlyLinear(child))
            replaced += 1
        else:
            replaced += quantize_linears_int8(child)
    return replaced
