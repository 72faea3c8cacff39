"""MWM's schedule (docs/algorithm.md §6) as arithmetic on counters, shared by the
RLlib algorithm (`rllib_mwm.rllib.algorithm.MWM`) and the loop without Ray
(`rllib_mwm.core.loop`).

Counts are agent steps (one policy decision, `action_repeat` env frames)."""

from __future__ import annotations


def pretraining_plan(mae_pretrain: int, pretrain: int) -> list[bool]:
    """Whether each pretraining step adds a world-model update to its MAE update:
    one joint step, `mae_pretrain − pretrain` MAE-only steps, `pretrain` joint
    steps, as the released code orders them (docs/algorithm.md §6)."""
    return [True] + [False] * max(0, mae_pretrain - pretrain) + [True] * pretrain


def owed_updates(
    config, train_steps: int, mae_updates: int, world_model_updates: int
) -> tuple[int, int]:
    """(MAE updates, world-model updates) owed after `train_steps` agent steps of
    the policy, given those done: one world-model + actor-critic update
    (`train_steps` of them) per `train_every` agent steps, one MAE update
    (`train_mae_steps`) per `train_mae_every`."""
    owed_wm = (train_steps // config.train_every) * config.train_steps
    owed_mae = (train_steps // config.train_mae_every) * config.train_mae_steps
    return owed_mae - mae_updates, owed_wm - world_model_updates


def interleaved(mae: int, world_model: int) -> list[tuple[bool, bool]]:
    """The (MAE?, world model?) steps that run `mae` and `world_model` updates,
    MAE first in each step, as the reference's per-step order."""
    return [(i < mae, i < world_model) for i in range(max(mae, world_model))]
