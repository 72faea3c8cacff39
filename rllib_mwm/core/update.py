"""The four optimizers and their steps (docs/algorithm.md §2–§4): which networks
each owns, how its loss terms are summed, and one step: clip, weight decay, Adam
with Keras' ε, skipped on the device when the gradients are not finite.

Gradient isolation is structural: a step's gradients are
`torch.autograd.grad(its loss, its parameters)`, so e.g. the actor loss, whose
gradient flows back through the dynamics, never writes into world-model grads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rllib_mwm.core.perf import phase

Tensor = torch.Tensor

#: Optimizer name → (config key of its settings, networks it owns).
OPTIMIZERS = {
    "mae": ("mae_opt", ("mae_encoder", "mae_decoder")),
    "world_model": (
        "model_opt",
        (
            "latent_encoder",
            "rssm",
            "latent_decoder",
            "reward_head",
            "discount_head",
        ),
    ),
    "actor": ("actor_opt", ("actor",)),
    "critic": ("critic_opt", ("critic",)),
}
#: Loss key → optimizer it feeds.
LOSS_OPTIMIZER = {
    "mae_pixel": "mae",
    "mae_reward": "mae",
    "feature": "world_model",
    "kl": "world_model",
    "reward": "world_model",
    "discount": "world_model",
    "actor": "actor",
    "critic": "critic",
}


class NonFiniteUpdateError(RuntimeError):
    """Too many consecutive updates had non-finite gradients, or the weights
    became non-finite; the message names the optimizer and the losses."""


def decayed_parameters(module, nets, everything: bool) -> list:
    """The parameters of `module.<nets>` that weight decay applies to: all of them
    for the MAE (docs/algorithm.md §2); otherwise kernels only, i.e. the weight
    matrices of linear and conv layers, never biases, norms or learned tokens such
    as the latent decoder's `mask_token` (docs/algorithm.md §3)."""
    return [
        parameter
        for net in nets
        if getattr(module, net, None) is not None
        for key, parameter in getattr(module, net).named_parameters()
        if everything or (key.endswith(".weight") and parameter.dim() >= 2)
    ]


def like_layout(grad: Tensor, param: Tensor) -> Tensor:
    """`grad` in `param`'s memory layout. Fused Adam walks gradient and parameter
    memory in step, so e.g. the channels-last gradient that a conv on permuted
    (N, H, W, C) frames gets would be applied to the wrong elements."""
    if grad.stride() == param.stride():
        return grad
    return torch.empty_like(param).copy_(grad)


def keras_adam_eps(eps: float, step: int, beta2: float = 0.999) -> float:
    """The ε that makes torch's Adam take Keras' step `step` (from 1).

    Keras adds ε to the uncorrected √v: p −= lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε);
    torch adds it after the bias correction: p −= lr/(1−β₁ᵗ)·m/(√v/√(1−β₂ᵗ) + ε).
    They agree for ε_t = ε/√(1−β₂ᵗ): 31.6·ε at step 1, 1.26·ε at step 1000."""
    return eps / math.sqrt(1.0 - beta2**step)


def total_loss(losses: dict[str, Tensor], scales: dict, metrics: dict) -> Tensor:
    """Sums losses × `scales` (the config's `loss_scales`; actor/critic are
    unscaled); logs each into `metrics`, and the sum as `<optimizer>/loss` where it
    has several terms (MAE, world model).

    The KL loss arrives already scaled by `wmkl.scale` (inside its clip)."""
    optimizer = LOSS_OPTIMIZER[next(iter(losses))]
    total = 0.0
    for key, value in losses.items():
        scale = 1.0 if key in ("actor", "critic") else scales[key]
        metrics[f"{optimizer}/{key}_loss"] = value.detach()
        total = total + scale * value.float()
    if optimizer not in losses:
        metrics[f"{optimizer}/loss"] = total.detach()
    return total


def optimizer_step(
    name: str,
    optimizer: torch.optim.Adam,
    params: list[Tensor],
    loss: Tensor,
    settings: dict,
    *,
    decayed: list[Tensor],
    adam_step: int,
    lr_scale: float = 1.0,
    average: Callable[[list[Tensor]], list[Tensor]] | None = None,
) -> dict[str, Tensor | float]:
    """Gradients of `loss` over `params` only (averaged by `average`, e.g. over
    data-parallel learners), then one step of `optimizer` (fused Adam) with the
    optimizer's `settings` (`lr`, `eps`, `clip`, `wd`); `adam_step` counts from 1.

    The global norm is taken of the raw gradients: a non-finite one skips the
    whole step (weight decay included) on the device, through fused Adam's
    `found_inf`, so no host sync is needed. Otherwise gradients are clipped to
    norm `clip`, weight decay is applied to `decayed` (p ← (1 − wd)·p) and Adam
    steps.
    """
    with phase(f"{name}/backward"):
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    with phase(f"{name}/optimizer"), torch.no_grad():
        grads = [
            torch.zeros_like(p) if g is None else like_layout(g, p)
            for p, g in zip(params, grads, strict=True)
        ]
        if average is not None:
            # Before the norm: every learner clips, skips and steps alike.
            grads = average(grads)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        found_inf = (~torch.isfinite(norm)).float()  # 1.0 skips the step.
        clip = settings["clip"]
        torch._foreach_mul_(grads, clip / torch.clamp(norm, min=clip))
        if settings["wd"] and decayed:
            torch._foreach_mul_(decayed, 1.0 - settings["wd"] * (1.0 - found_inf))
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        eps = keras_adam_eps(settings["eps"], adam_step)
        for group in optimizer.param_groups:
            group["lr"] = settings["lr"] * lr_scale
            group["eps"] = eps
        optimizer.found_inf = found_inf
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {
        f"{name}/grad_norm": norm,
        f"{name}/lr": settings["lr"] * lr_scale,
        f"{name}/skipped_step": found_inf,
    }


def check_finite_weights(module) -> None:
    """Raises `NonFiniteUpdateError` naming the first non-finite parameters."""
    params = dict(module.named_parameters())
    finite = torch.stack([p.detach().isfinite().all() for p in params.values()])
    if not bool(finite.all()):
        bad = [n for n, ok in zip(params, finite.tolist(), strict=True) if not ok]
        raise NonFiniteUpdateError(
            f"non-finite weights in {', '.join(bad[:3])}"
            f"{' …' if len(bad) > 3 else ''}; refusing to checkpoint or sync "
            "them: resume from the last checkpoint"
        )
