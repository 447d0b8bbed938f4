"""Causal self-attention as GPT-style models write it, under sdpa_kernel, plus a KV-cache decode step."""
import json
import math

import disttorch as torch
import disttorch.nn as nn
import disttorch.nn.functional as F
from disttorch.nn.attention import SDPBackend, sdpa_kernel
from disttorch.nn.attention.bias import causal_lower_right


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.flash = hasattr(torch.nn.functional, "scaled_dot_product_attention")

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


torch.manual_seed(0)
attn = CausalSelfAttention(16, 4)
x = torch.randn(2, 6, 16)
with sdpa_kernel(SDPBackend.MATH):
    y_math = attn(x)
with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
    y_any = attn(x)

# A few training steps under the math backend.
opt = torch.optim.AdamW(attn.parameters(), lr=1e-2)
target = torch.randn(2, 6, 16)
losses = []
for step in range(20):
    with sdpa_kernel(SDPBackend.MATH):
        loss = F.mse_loss(attn(x), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

# Decoding 2 new tokens against a cache of 5: lower-right causal alignment.
q = torch.randn(1, 1, 2, 4)
k = torch.randn(1, 1, 5, 4)
v = torch.randn(1, 1, 5, 4)
with sdpa_kernel(SDPBackend.MATH):
    dec = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(2, 5))

# What the flash-only CPU backend refuses (dropout).
refused = ""
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)
    except RuntimeError as e:
        refused = str(e)

# FlexAttention with a causal block mask and a soft-capping score_mod (Gemma-2 style), against plain SDPA.
from disttorch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: E402


def causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def soft_cap(score, b, h, q_idx, kv_idx):
    return 30.0 * torch.tanh(score / 30.0)


qf, kf, vf = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
block_mask = create_block_mask(causal, B=None, H=None, Q_LEN=6, KV_LEN=6, device="cpu")
flex = flex_attention(qf, kf, vf, block_mask=block_mask)
flex_diff = (flex - F.scaled_dot_product_attention(qf, kf, vf, is_causal=True)).abs().max().item()
capped = flex_attention(qf, kf, vf, score_mod=soft_cap, block_mask=block_mask)

print(json.dumps({"same": (y_math - y_any).abs().max().item(), "flex_diff": flex_diff,
                  "capped_shape": list(capped.shape), "first_loss": losses[0], "last_loss": losses[-1],
                  "q": q.tolist(), "k": k.tolist(), "v": v.tolist(), "dec": dec.tolist(), "refused": refused,
                  "scale": 1 / math.sqrt(4)}))
