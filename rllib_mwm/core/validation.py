"""The value checks of `MWMConfig.validate()` (docs/errors.md): every schedule,
replay, loss and optimizer value alone and with the ones it must fit; each failure
is one `ValueError` naming the key and what it must be."""

from __future__ import annotations

import numbers

from rllib_mwm.core.defaults import MODEL_KEYS
from rllib_mwm.core.nets.configs import network_configs


def _need(condition: bool, field: str, what: str) -> None:
    if not condition:
        raise ValueError(f"MWMConfig.{field} {what}.")


def check_values(config) -> None:
    """Every value alone and with the ones it must fit, then the networks' sizes
    (`network_configs`, the same builder the networks use). `config`: the MWM keys
    as attributes (`MWMConfig`, `mwm_settings`)."""
    check_schedule(config)
    check_replay(config)
    check_losses_and_optimizers(config)
    network_configs({key: getattr(config, key) for key in MODEL_KEYS})


def check_schedule(config) -> None:
    """Counts and sizes of the schedule (docs/algorithm.md §6)."""
    nonnegative = ("prefill", "mae_pretrain", "pretrain", "eval_eps")
    for name in (*nonnegative, "max_policy_lag"):
        _need(getattr(config, name) >= 0, name, "must be >= 0")
    positive = ("train_every", "train_mae_every", "train_steps", "train_mae_steps")
    for name in (*positive, "slow_target_update", "eval_every", "log_every"):
        _need(getattr(config, name) >= 1, name, "must be >= 1")
    _need(config.max_consecutive_skips >= 1, "max_consecutive_skips", "must be >= 1")
    for name in ("dataset", "mae_dataset"):
        for key in ("batch", "length"):
            _need(getattr(config, name)[key] >= 1, f"{name}.{key}", "must be >= 1")
    _need(config.imag_horizon >= 2, "imag_horizon", "must be >= 2")


def check_replay(config) -> None:
    """The replay against the sequences it must hold."""
    capacity = config.replay["capacity"]
    for name in ("dataset", "mae_dataset"):
        length = getattr(config, name)["length"]
        if capacity < length:
            raise ValueError(
                f"MWMConfig.replay.capacity {capacity} holds less than one "
                f"sequence of {name}.length {length}: try {max(length, 100_000)}."
            )
    directory = config.replay["directory"]
    _need(
        directory is None or (isinstance(directory, str) and directory != ""),
        "replay.directory",
        "must be a path (str) or None (None: <trial dir>/replay)",
    )
    _need(
        1 <= config.replay["minlen"] <= config.dataset["length"],
        "replay.minlen",
        "must be in [1, dataset.length] (windows are at most dataset.length)",
    )


def check_losses_and_optimizers(config) -> None:
    """Loss weights, clips and the four optimizers' settings."""
    _need(0.0 <= config.mask_ratio < 1.0, "mask_ratio", "must be in [0, 1)")
    _need(0.0 <= config.wmkl_balance <= 1.0, "wmkl_balance", "must be in [0, 1]")
    _need(0.0 < config.gamma <= 1.0, "gamma", "must be in (0, 1]")
    _need(0.0 < config.lambda_ <= 1.0, "lambda_", "must be in (0, 1]")
    heads = set(config.grad_heads)
    _need(
        heads <= {"reward", "discount"},
        "grad_heads",
        "may only list 'reward' and 'discount'",
    )
    _need(
        "discount" not in heads or config.pred_discount,
        "grad_heads",
        "lists 'discount' but pred_discount is False",
    )
    clip = config.clip_rewards
    _need(
        clip in ("identity", "sign", "tanh")
        or (isinstance(clip, numbers.Real) and not isinstance(clip, bool) and clip > 0),
        "clip_rewards",
        "must be 'identity', 'sign', 'tanh' or a positive number",
    )
    scales = {f"loss_scales.{k}": v for k, v in config.loss_scales.items()}
    scales["wmkl.scale"], scales["aent.scale"] = (
        config.wmkl["scale"],
        config.aent["scale"],
    )
    for name, value in {**scales, "wmkl_minloss": config.wmkl_minloss}.items():
        _need(value >= 0, name, "must be >= 0")
    norm = config.reward_norm
    _need(0 <= norm["momentum"] <= 1, "reward_norm.momentum", "must be in [0, 1]")
    _need(norm["eps"] > 0, "reward_norm.eps", "must be > 0")
    for name in ("mae_opt", "model_opt", "actor_opt", "critic_opt"):
        opt = getattr(config, name)
        _need(opt["lr"] > 0 and opt["eps"] > 0, name, "needs lr > 0, eps > 0")
        _need(0.0 <= opt["wd"] < 1.0, f"{name}.wd", "must be in [0, 1)")
        _need(opt["clip"] > 0, f"{name}.clip", "must be > 0 (a gradient norm)")
        _need(opt["warmup"] >= 0, f"{name}.warmup", "must be >= 0 (updates)")
