"""MWM's updates (docs/algorithm.md §2–§4) for any host that holds the networks
and the four optimizers: `MWMUpdates` is mixed into RLlib's `MWMTorchLearner` and
into `rllib_mwm.core.learner.CoreLearner`, the learner without Ray.

Two update entry points:
- `update_mae(batch)`: one MAE step on independent frames (`mae_dataset`).
- `update_world_model(batch)`: one world-model step on sequences (`dataset`), then
  one actor and one critic step in imagination started from the world model's
  posteriors, using the freshly updated world model (as DreamerV2/MWM do).

Each optimizer steps on the gradients of its own loss over its own parameters
(`rllib_mwm.core.update`). Sequence batches are aligned as in docs/algorithm.md §1:
`actions[:, t]` led to `obs[:, t]`.

Non-finite numbers never reach the weights: an optimizer whose gradients are not
finite skips its step on the device (`_step`), `<optimizer>/skipped_updates`
counts it, and `max_consecutive_skips` skips in a row raise
`NonFiniteUpdateError` naming the losses that were not finite. Each update syncs
with the host once, for its metrics (`_results`).

A host provides `config` (the MWM keys as attributes), `mwm_module`, `_device`,
`optimizer_and_params(name)`, and for data-parallel learners `average` (a mean
over learners of a list of tensors) and `_global_batch_noise()`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from rllib_mwm.core import losses
from rllib_mwm.core.nets.mae import standardize
from rllib_mwm.core.perf import autocast, phase, precision_choice
from rllib_mwm.core.update import (
    OPTIMIZERS,
    NonFiniteUpdateError,
    check_finite_weights,
    optimizer_step,
    total_loss,
)

Tensor = torch.Tensor


class MWMUpdates:
    """The updates; see the module docstring for what a host provides."""

    #: Mean over data-parallel learners of a list of tensors (None: one learner).
    average: Callable[[list[Tensor]], list[Tensor]] | None = None

    def init_update_state(self) -> None:
        """Counters and running statistics, fresh."""
        #: What checkpoints must keep (the reward magnitude as `reward_mag`).
        self.progress = {
            "mae_updates": 0,
            "world_model_updates": 0,
            "critic_updates": 0,
            "reward_mag": 1.0,
            "skipped_updates": dict.fromkeys(OPTIMIZERS, 0),
        }
        #: Skipped steps in a row per optimizer (not checkpointed: a restored run
        #: starts from finite weights).
        self._skip_streak = dict.fromkeys(OPTIMIZERS, 0)
        self._reward_mag = torch.tensor(
            1.0, dtype=torch.float64, device=self._device or "cpu"
        )

    def update_state(self) -> dict[str, Any]:
        """The counters and the reward magnitude, as plain numbers."""
        return {**self.progress, "reward_mag": float(self._reward_mag)}

    def load_update_state(self, state: dict[str, Any]) -> None:
        self.progress.update(state)
        self.progress.setdefault("skipped_updates", dict.fromkeys(OPTIMIZERS, 0))
        self._reward_mag = torch.tensor(
            float(self.progress["reward_mag"]),
            dtype=torch.float64,
            device=self._device or "cpu",
        )

    # ------------------------------------------------------------------ updates
    def update_mae(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One MAE step. batch: `obs` (B, T, H, W, 3) or (N, H, W, 3) uint8 and
        `rewards` of the leading shape; frames are independent unless tube masking.
        """
        config, module = self.config, self.mwm_module
        batch = self._to_tensors(batch)
        seq_len = batch["obs"].shape[1] if batch["obs"].dim() == 5 else 1
        with phase("mae/forward"), self._autocast(), self._global_batch_noise():
            images = standardize(batch["obs"].reshape(-1, *batch["obs"].shape[-3:]))
            rewards = losses.transform_reward(
                batch["rewards"].reshape(-1), config.clip_rewards
            )
            terms, metrics = losses.mae_loss(
                module.mae_encoder,
                module.mae_decoder,
                images,
                rewards if config.mae["reward_pred"] else None,
                config.mask_ratio,
                config.mae["patch_size"],
                seq_len=seq_len,
            )
        # Linear warm-up lr·n/warmup from n = 0 (docs/algorithm.md §2).
        warmup = config.mae_opt["warmup"]
        lr_scale = min(1.0, self.progress["mae_updates"] / warmup) if warmup else 1.0
        metrics.update(self._step("mae", self._total(terms, metrics), lr_scale))
        self.progress["mae_updates"] += 1
        return self._log(metrics)

    def update_world_model(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One world-model step, then one actor and one critic step
        (docs/algorithm.md §3–§4).

        batch: `obs` (B, T, H, W, 3) uint8, `actions` (B, T, A) or (B, T) ints,
        `rewards`, `is_first`, `is_terminal` (B, T).
        """
        config, module = self.config, self.mwm_module
        batch = self._to_tensors(batch)
        actions = self._action_vectors(batch["actions"])
        rewards = losses.transform_reward(batch["rewards"].float(), config.clip_rewards)
        discount = config.gamma * (1.0 - batch["is_terminal"].float())
        with phase("world_model/tokens"), torch.no_grad(), self._autocast():
            tokens = module.tokens(batch["obs"])  # (B, T, 1+L, D)
        with phase("world_model/forward"), self._autocast(), self._global_batch_noise():
            terms, metrics, post = losses.world_model_loss(
                module,
                tokens,
                actions,
                rewards,
                batch["is_first"].float(),
                discount,
                kl_balance=config.wmkl_balance,
                kl_scale=config.wmkl["scale"],
                kl_minloss=config.wmkl_minloss,
                grad_heads=tuple(config.grad_heads),
            )
        metrics.update(self._step("world_model", self._total(terms, metrics)))
        self.progress["world_model_updates"] += 1
        start = {k: v.flatten(0, 1).detach() for k, v in post.items()}
        metrics.update(self._train_actor_critic(start, discount.flatten(0, 1)))
        return self._log(metrics)

    def _train_actor_critic(self, start: dict[str, Tensor], start_discount: Tensor):
        config, module = self.config, self.mwm_module
        noise = self._global_batch_noise()
        with phase("actor_critic/imagine"), self._autocast(), noise:
            _, feat, actions, policy = losses.imagine(
                module.rssm, module.actor, start, config.imag_horizon
            )  # feat (N, H+1, F), policy on states 0..H−1
        with phase("actor_critic/targets"), self._autocast():
            # Rewards of all H+1 states set the running scale (as the released
            # code); those of states 0..H−1 enter the returns (H bootstraps).
            reward, metrics = self._normalize_reward(module.reward_head(feat).mode())
            reward = reward[:, :-1]
            if module.discount_head is not None:
                discount = module.discount_head(feat[:, :-1]).mean()
                discount = torch.cat([start_discount[:, None], discount[:, 1:]], 1)
            else:
                discount = torch.full_like(reward, config.gamma)
            values = module.slow_critic(feat).mode()  # (N, H+1)
            targets = losses.lambda_return(
                reward, values, discount, config.lambda_
            )  # (N, H)
            weights = losses.discount_weights(discount)  # (N, H)
            actor_losses, actor_metrics = losses.actor_loss(
                module.actor,
                policy,
                actions,
                targets,
                values,
                weights,
                entropy_scale=config.aent["scale"],
                grad=self._actor_grad(),
                action_grad=config.reinforce_action_grad,
            )
        metrics.update(actor_metrics)
        metrics["actor/imag_reward_mean"] = reward.mean().detach()
        metrics["actor/target_mean"] = targets.mean().detach()
        metrics["actor/slow_value_mean"] = values.mean().detach()
        metrics.update(self._step("actor", self._total(actor_losses, metrics)))
        with phase("critic/forward"), self._autocast():
            critic_losses, critic_metrics = losses.critic_loss(
                module.critic, feat, targets, weights
            )
        metrics.update(critic_metrics)
        metrics.update(self._step("critic", self._total(critic_losses, metrics)))
        if self.progress["critic_updates"] % config.slow_target_update == 0:
            module.slow_critic.load_state_dict(module.critic.state_dict())
        self.progress["critic_updates"] += 1
        return metrics

    # ------------------------------------------------------------------ helpers
    def _total(self, terms: dict[str, Tensor], metrics: dict) -> Tensor:
        """`total_loss` with the config's `loss_scales`."""
        return total_loss(terms, self.config.loss_scales, metrics)

    def _step(self, name: str, loss: Tensor, lr_scale: float = 1.0) -> dict:
        """`optimizer_step` of optimizer `name` over its own parameters; with
        several learners their gradients are averaged (one all-reduce)."""
        optimizer, params = self.optimizer_and_params(name)
        return optimizer_step(
            name,
            optimizer,
            params,
            loss,
            getattr(self.config, OPTIMIZERS[name][0]),
            decayed=[p for p in params if id(p) in self.decayed],
            adam_step=self._steps_taken(name) + 1,
            lr_scale=lr_scale,
            average=self.average,
        )

    def _steps_taken(self, name: str) -> int:
        """Adam steps optimizer `name` has applied (its updates less the skipped
        ones; the counters are host-side, so this needs no sync)."""
        counter = {"mae": "mae_updates", "world_model": "world_model_updates"}
        updates = self.progress[counter.get(name, "critic_updates")]
        return updates - self.progress["skipped_updates"][name]

    def _normalize_reward(self, reward: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """StreamNorm: mag ← m·mag + (1−m)·mean|r|, r / (mag + eps)
        (docs/algorithm.md §4), and the statistics of r before and after. The
        magnitude stays a device tensor (no sync), in float64 as the released
        code keeps it."""
        settings = self.config.reward_norm
        momentum = settings["momentum"]
        if momentum < 1.0:
            mag = reward.detach().abs().mean().double()
            if self.average is not None:
                (mag,) = self.average([mag])  # mean |r| of the global batch
            self._reward_mag = momentum * self._reward_mag + (1.0 - momentum) * mag
        normed = reward / (self._reward_mag.to(reward.dtype) + settings["eps"])
        metrics = {
            "actor/reward_mean": reward.detach().mean(),
            "actor/reward_std": reward.detach().std(correction=0),
            "actor/reward_normed_mean": normed.detach().mean(),
            "actor/reward_normed_std": normed.detach().std(correction=0),
        }
        return normed, metrics

    def _global_batch_noise(self):
        """Noise as drawn on this learner's batch (data-parallel hosts override)."""
        return contextlib.nullcontext()

    def _actor_grad(self) -> str:
        grad = self.config.actor_grad
        if grad == "auto":
            return "reinforce" if self.mwm_module.discrete else "dynamics"
        return grad

    def _action_vectors(self, actions: Tensor) -> Tensor:
        module = self.mwm_module
        if module.discrete and actions.shape[-1] != module.action_dim:
            indices = actions.reshape(actions.shape[:2]).long()  # (B, T)
            return torch.nn.functional.one_hot(indices, module.action_dim).float()
        return actions.float()

    def _to_tensors(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """numpy/torch → device tensors, dtypes kept (frames travel as uint8). On
        CUDA through pinned memory, asynchronously."""
        cuda = self._device is not None and torch.device(self._device).type == "cuda"
        tensors = {}
        for key, value in batch.items():
            tensor = value if torch.is_tensor(value) else torch.as_tensor(value)
            if cuda and tensor.device.type == "cpu":
                tensor = tensor.pin_memory().to(self._device, non_blocking=True)
            tensors[key] = tensor.to(self._device or "cpu")
        return tensors

    @property
    def precision(self) -> str:
        """'bf16' or 'fp32': the config's `precision` resolved for this device."""
        return self.precision_choice[0]

    @property
    def precision_choice(self) -> tuple[str, str]:
        """(`precision`, why it was chosen)."""
        return precision_choice(self.config.precision, self._device)

    def _autocast(self):
        return autocast(self.precision, self._device)

    def _log(self, metrics: dict[str, Tensor | float]) -> dict[str, float]:
        return self._results(metrics)

    def _results(self, metrics: dict[str, Tensor | float]) -> dict[str, float]:
        """The metrics as floats (the update's one host sync), skips counted."""
        device = self._device or "cpu"
        keys = [k for k, v in metrics.items() if torch.is_tensor(v)]
        values = torch.stack([metrics[k].detach().float().to(device) for k in keys])
        result = {k: v for k, v in metrics.items() if not torch.is_tensor(v)}
        result.update(zip(keys, values.cpu().tolist(), strict=True))
        self._count_skips(result)
        return result

    def _count_skips(self, result: dict[str, float]) -> None:
        """Counts skipped steps per optimizer into `result`; raises after
        `max_consecutive_skips` in a row."""
        skipped = self.progress["skipped_updates"]
        for name in OPTIMIZERS:
            if f"{name}/skipped_step" not in result:
                continue
            if result[f"{name}/skipped_step"]:
                skipped[name] += 1
                self._skip_streak[name] += 1
            else:
                self._skip_streak[name] = 0
            result[f"{name}/skipped_updates"] = skipped[name]
            if self._skip_streak[name] >= self.config.max_consecutive_skips:
                bad = [
                    f"{key}={value}"
                    for key, value in result.items()
                    if key.endswith("_loss") and not math.isfinite(value)
                ] or ["none; the gradients were"]
                raise NonFiniteUpdateError(
                    f"{name}: {self._skip_streak[name]} updates in a row had "
                    f"non-finite gradients (non-finite losses: {', '.join(bad)}); "
                    "no step was applied and the last checkpoint holds finite "
                    "weights: resume from it with a lower lr or check the inputs "
                    "(max_consecutive_skips sets the limit)"
                )

    def _check_finite_weights(self) -> None:
        check_finite_weights(self.mwm_module)
