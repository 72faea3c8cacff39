"""ViT building blocks shared by the MAE and the latent ViTs (docs/algorithm.md §2, §3).

The only copy of the sin-cos position tables, patchify, random masking and the
CLS reordering. Tokens are batch-major: (N, L, D).
"""

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.vision_transformer import Block
from torch import nn

from rllib_mwm.core.nets.noise import uniform


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[sin(pos·ω), cos(pos·ω)] with ω_i = 1 / 10000^(i / (dim/2)), i < dim/2."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2)
    omega = 1.0 / 10000**omega  # (dim/2,)
    angles = pos[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (M, dim)


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos table of the MAE paper, (grid*grid, dim) float32.

    Token k = h*grid + w (row-major). MAE builds its grid with
    ``np.meshgrid(grid_w, grid_h)``, so the FIRST dim/2 channels encode the column
    index w and the last dim/2 encode the row index h, each as [sin, cos].
    """
    if dim % 4:
        raise ValueError(f"sin-cos embedding needs dim divisible by 4, got {dim}")
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # (grid, grid)
    emb_w = _sincos_1d(dim // 2, cols.reshape(-1))  # (grid², dim/2)
    emb_h = _sincos_1d(dim // 2, rows.reshape(-1))  # (grid², dim/2)
    return torch.cat([emb_w, emb_h], dim=1).float()  # (grid², dim)


def sincos_pos_embed_with_extra(dim: int, grid: int) -> torch.Tensor:
    """(grid*grid + 1, dim): the grid table plus one extra token
    (docs/algorithm.md §2, §3).

    Built from the (grid+1)×(grid+1) table: its top-left grid×grid block
    (row-major) for the patches, its last corner (grid, grid) for the extra token.
    """
    table = sincos_pos_embed_2d(dim, grid + 1).reshape(grid + 1, grid + 1, dim)
    patches = table[:grid, :grid].reshape(grid * grid, dim)
    return torch.cat([patches, table[grid, grid][None]], dim=0)  # (grid² + 1, dim)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(..., H, W, C) -> (..., L, patch²·C); row-major patches, pixels row-major
    inside a patch, channel last."""
    *lead, height, width, chans = images.shape
    rows, cols = height // patch, width // patch
    x = images.reshape(*lead, rows, patch, cols, patch, chans)
    x = x.movedim(-4, -3)  # (..., rows, cols, patch, patch, C)
    return x.reshape(*lead, rows * cols, patch * patch * chans)


def unpatchify(patches: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """Inverse of `patchify` for a square grid: (..., L, patch²·C) -> (..., H, W, C)."""
    *lead, num, _ = patches.shape
    grid = int(round(num**0.5))
    assert grid * grid == num, f"{num} patches do not form a square grid"
    x = patches.reshape(*lead, grid, grid, patch, patch, channels)
    x = x.movedim(-3, -4)  # (..., rows, patch, cols, patch, C)
    return x.reshape(*lead, grid * patch, grid * patch, channels)


def random_masking(
    x: torch.Tensor, mask_ratio: float, tube_T: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep K = int(L·(1 − ratio)) random tokens per row (docs/algorithm.md §2).

    Returns kept (N, K, D), mask (N, L) with 1 = removed, ids_restore (N, L).
    With K = L the order is left unchanged. ``tube_T``: rows are B·T frames
    (batch-major) and each run of T consecutive frames shares one mask.
    """
    n, length, dim = x.shape
    keep = int(length * (1 - mask_ratio))
    if keep == length:  # a Python-level constant, not a data-dependent branch
        ids_shuffle = torch.arange(length, device=x.device).expand(n, length)
    else:
        groups = n if tube_T is None else n // tube_T
        assert tube_T is None or groups * tube_T == n, (n, tube_T)
        noise = uniform("mae_mask_noise", (groups, length), device=x.device)  # (G, L)
        if tube_T is not None:
            noise = noise.repeat_interleave(tube_T, dim=0)  # (N, L)
        ids_shuffle = noise.argsort(dim=1)  # small noise is kept
    ids_restore = ids_shuffle.argsort(dim=1)  # (N, L) rank of each position
    ids_keep = ids_shuffle[:, :keep]  # (N, K)
    kept = x.gather(1, ids_keep[..., None].expand(-1, -1, dim))  # (N, K, D)
    mask = (ids_restore >= keep).to(x.dtype)  # (N, L)
    return kept, mask, ids_restore


def unshuffle(tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Put [kept, fill] tokens (N, L, D) back into patch order using ids_restore."""
    index = ids_restore[..., None].expand(-1, -1, tokens.shape[-1])
    return tokens.gather(1, index)  # (N, L, D)


def move_cls_last(tokens: torch.Tensor) -> torch.Tensor:
    """(..., 1+L, D) CLS first -> patches then CLS (docs/algorithm.md §3). A roll:
    one copy forward and one backward (slices and a cat cost a zero-filled
    gradient per slice)."""
    return tokens.roll(-1, dims=-2)


def move_cls_first(tokens: torch.Tensor) -> torch.Tensor:
    """(..., L+1, D) CLS last -> CLS then patches; inverse of `move_cls_last`."""
    return tokens.roll(1, dims=-2)


class _GeluLinear(torch.autograd.Function):
    """linear(gelu(h), weight, bias) that keeps only h for the backward and
    recomputes gelu(h) there. Autograd would keep both h (for GELU's gradient) and
    gelu(h) (for the weight's), each as large as the MLP's hidden layer: 0.33 GB
    per latent-ViT block at the paper's batch. The same ops as autograd's, so the
    same numbers; under autocast the matmuls run in h's dtype."""

    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        return F.linear(F.gelu(h), weight.to(h.dtype), bias.to(h.dtype))

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        grad = grad.to(h.dtype)
        rows = grad.reshape(-1, grad.shape[-1])
        grad_weight = rows.t().mm(F.gelu(h).reshape(-1, h.shape[-1]))
        grad_h = torch.ops.aten.gelu_backward(grad.matmul(weight.to(h.dtype)), h)
        return grad_h, grad_weight.to(weight.dtype), rows.sum(0).to(weight.dtype)


class LeanMlp(Mlp):
    """timm's `Mlp` (GELU, no dropout or norm: the parameters and numbers are
    its) whose GELU output is recomputed in the backward instead of kept
    (`_GeluLinear`, which computes exact GELU itself)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not (isinstance(self.act, nn.GELU) and self.act.approximate == "none"):
            raise ValueError(f"LeanMlp recomputes exact GELU, not {self.act}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.fc1(x)
        if not (torch.is_grad_enabled() and hidden.requires_grad):
            return self.fc2(self.act(hidden))
        return _GeluLinear.apply(hidden, self.fc2.weight, self.fc2.bias)


class TransformerStack(nn.Module):
    """`depth` pre-norm timm Blocks (qkv bias, GELU, no dropout; `LeanMlp`) +
    LayerNorm."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim,
                    num_heads,
                    mlp_ratio,
                    qkv_bias=True,
                    norm_layer=norm,
                    mlp_layer=LeanMlp,
                )
                for _ in range(depth)
            ]
        )
        self.norm = norm(dim)
        self._choose_attention_kernel()

    def _choose_attention_kernel(self) -> None:
        """Fused `scaled_dot_product_attention` on accelerators; on CPU the plain
        softmax(QKᵀ)V path, which PyTorch's CPU flash kernel does not beat on our
        17–66-token sequences (2 blocks forward + backward, 1 thread on a 2-core
        EPYC: 4–6 % less time at the `cpu` preset's shapes)."""
        fused = next(self.parameters()).device.type != "cpu"
        for block in self.blocks:
            block.attn.fused_attn = fused

    def _apply(self, fn, recurse=True):
        # `.to(device)` goes through here: pick the kernel for the new device.
        super()._apply(fn, recurse)
        self._choose_attention_kernel()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))  # (N, L, D)


def init_vit_weights(module: nn.Module) -> None:
    """MAE init, applied with ``Module.apply``: Xavier-uniform weights for Linear
    and Conv (Conv fans include the kernel area, like Keras' Glorot default of the
    reference), zero biases, LayerNorm 1/0."""
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
