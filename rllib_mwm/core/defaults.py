"""MWM's hyperparameters with the reference defaults (`MWM_DEFAULTS`), the presets
(`PRESETS`: docs/algorithm.md §7 plus `cpu` and `debug`) and the keys the RLModule
needs (`MODEL_KEYS`). `MWMConfig` (`rllib_mwm.rllib.config`) sets and checks them.
"""

from __future__ import annotations

import copy
import difflib
import numbers
import types
from typing import Any

_OPT = {"lr": 3e-4, "eps": 1e-5, "clip": 100.0, "wd": 1e-6, "warmup": 0}

#: The reference defaults. Counts are agent steps (one policy decision).
MWM_DEFAULTS: dict[str, Any] = {
    # --- schedule (docs/algorithm.md §6) ---
    "prefill": 5000,
    "mae_pretrain": 5000,
    "pretrain": 1,
    "train_every": 5,
    "train_mae_every": 5,
    "train_steps": 1,
    "train_mae_steps": 1,
    "max_policy_lag": 0,  # Agent steps; > 0 overlaps sampling and updates.
    "eval_every": 10000,
    "eval_eps": 1,
    "log_every": 10000,
    # `directory`: where finished episodes are written (None: <trial dir>/replay).
    "replay": {
        "capacity": 2_000_000,
        "minlen": 50,
        "prioritize_ends": True,
        "directory": None,
    },
    "dataset": {"batch": 16, "length": 50},
    "mae_dataset": {"batch": 32, "length": 32},
    "precision": "auto",
    "compile": False,
    "max_consecutive_skips": 100,
    "clip_rewards": "identity",
    "eval_state_mean": False,
    # --- MAE (docs/algorithm.md §2) ---
    "mask_ratio": 0.75,
    "mae": {
        "img_size": 64,
        "patch_size": 8,
        "in_chans": 3,
        "embed_dim": 256,
        "depth": 4,
        "num_heads": 4,
        "mlp_ratio": 4.0,
        "decoder_embed_dim": 256,
        "decoder_depth": 3,
        "decoder_num_heads": 4,
        "early_conv": True,
        "reward_pred": True,
        "reward_quirk": False,
        "tube_masking": False,
    },
    "mae_opt": {**_OPT, "warmup": 2500},
    # --- world model (docs/algorithm.md §3) ---
    "wm_flat_vit": {
        "embed_dim": 128,
        "depth": 2,
        "num_heads": 4,
        "decoder_embed_dim": 128,
        "decoder_depth": 2,
        "decoder_num_heads": 4,
        # "vit" (the reference) or "mlp": one hidden layer of decoder_embed_dim
        # units from feat to every token (`LatentMLPDecoder`).
        "decoder": "vit",
    },
    "rssm": {
        "deter": 1024,
        "hidden": 1024,
        "stoch": 32,
        "discrete": 32,
        "action_pad": 0,
        "img_in_act": False,  # The released code has no ELU after img_in.
    },
    "reward_head": {"layers": 4, "units": 512},
    "discount_head": {"layers": 4, "units": 512},
    "grad_heads": ["reward"],
    "pred_discount": False,
    "loss_scales": {
        "feature": 1.0,
        "kl": 1.0,
        "reward": 1.0,
        "discount": 1.0,
        "mae_pixel": 1.0,
        "mae_reward": 1.0,
    },
    "wmkl": {"scale": 1.0},
    "wmkl_minloss": 0.0,
    "wmkl_balance": 0.8,
    "model_opt": dict(_OPT),
    # --- actor-critic (docs/algorithm.md §4) ---
    "actor": {"layers": 4, "units": 512, "min_std": 0.1, "max_std": 1.0},
    "critic": {"layers": 4, "units": 512},
    "actor_opt": {**_OPT, "lr": 1e-4},
    "critic_opt": {**_OPT, "lr": 1e-4},
    "imag_horizon": 15,
    "actor_grad": "auto",
    # REINFORCE: the log-prob's gradient also flows through the sampled action
    # (the released code; DreamerV2 and we take the action as a constant).
    "reinforce_action_grad": False,
    "aent": {"scale": 1e-4},
    "slow_target_update": 100,
    "reward_norm": {"momentum": 1.0, "eps": 1e-8},
}

#: The docs/algorithm.md §7 presets plus `cpu` and `debug`. A preset is a dict
#: for `update_from_dict`; its `env_config` merges into the current one. Apply with
#: `MWMConfig().preset(name)` or, in YAML/`update_from_dict`,
#: `presets: [metaworld, debug]` (in order).
PRESETS: dict[str, dict[str, Any]] = {
    "metaworld": {
        "env_config": {"time_limit": 250, "action_repeat": 2},
        "eval_eps": 10,
        "dataset": {"batch": 50, "length": 50},
        "reward_norm": {"momentum": 0.99},
        "wmkl_minloss": 0.01,
    },
    "dmc_vision": {
        "env_config": {"action_repeat": 2},
        "eval_eps": 5,
        "dataset": {"batch": 16, "length": 50},
        "replay": {"prioritize_ends": False},
        "wmkl_minloss": 0.01,
    },
    "rlbench": {
        "env_config": {"time_limit": 200, "action_repeat": 2},
        "eval_eps": 5,
        "eval_every": 5000,
        "dataset": {"batch": 50, "length": 50},
        "replay": {"minlen": 1},
        "pred_discount": True,
        "grad_heads": ["reward", "discount"],
        "wmkl": {"scale": 0.1},
        "wmkl_minloss": 0.1,
    },
    # Sized for a 2-core CPU; apply after a suite preset. Why each setting:
    # docs/learning.md, "The `cpu` preset, setting by setting".
    "cpu": {
        "prefill": 1000,
        "mae_pretrain": 500,
        "train_every": 10,
        "train_mae_every": 10,
        "eval_every": 1000,
        "log_every": 5000,
        "replay": {"capacity": 200_000, "minlen": 16},
        "dataset": {"batch": 16, "length": 16},
        "mae_dataset": {"batch": 16, "length": 8},
        "mae": {
            "embed_dim": 128,
            "depth": 2,
            "decoder_embed_dim": 128,
            "decoder_depth": 1,
        },
        "mae_opt": {"lr": 3e-3, "warmup": 50},  # 10× the reference: few updates.
        # An MLP token decoder: the ViT one at this size ignored the latent.
        "wm_flat_vit": {
            "embed_dim": 64,
            "depth": 1,
            "decoder": "mlp",
            "decoder_embed_dim": 256,  # The MLP's hidden units.
            "decoder_depth": 1,  # Used by `decoder: vit` only.
        },
        "model_opt": {"lr": 1e-3},  # 3× the reference.
        "wmkl_minloss": 1.0,  # One free nat (DreamerV3's) instead of 0.01.
        "rssm": {"deter": 200, "hidden": 200, "stoch": 16, "discrete": 16},
        "reward_head": {"layers": 2, "units": 200},
        "discount_head": {"layers": 2, "units": 200},
        # min_std: an exploration floor (0.1 let the actor turn deterministic).
        "actor": {"layers": 2, "units": 200, "min_std": 0.3},
        "critic": {"layers": 2, "units": 200},
        "min_sample_timesteps_per_iteration": 500,
    },
    # Tiny widths, batches and schedule: tests and smoke runs (minutes on CPU).
    "debug": {
        "env_config": {"time_limit": 50},
        "prefill": 100,
        "mae_pretrain": 10,
        "eval_every": 100,
        "eval_eps": 1,
        "log_every": 200,
        "replay": {"capacity": 100_000, "minlen": 16},
        "dataset": {"batch": 4, "length": 16},
        "mae_dataset": {"batch": 4, "length": 8},
        "mae": {
            "embed_dim": 64,
            "depth": 1,
            "num_heads": 4,
            "decoder_embed_dim": 64,
            "decoder_depth": 1,
            "decoder_num_heads": 4,
        },
        "mae_opt": {"warmup": 10},
        "wm_flat_vit": {
            "embed_dim": 32,
            "depth": 1,
            "decoder_embed_dim": 32,
            "decoder_depth": 1,
        },
        "rssm": {"deter": 64, "hidden": 64, "stoch": 8, "discrete": 8},
        "reward_head": {"layers": 2, "units": 64},
        "discount_head": {"layers": 2, "units": 64},
        "actor": {"layers": 2, "units": 64},
        "critic": {"layers": 2, "units": 64},
        "imag_horizon": 5,
        "rollout_fragment_length": 10,
        "min_sample_timesteps_per_iteration": 50,
    },
}

#: Keys the RLModule needs; they travel to it through `model_config`.
MODEL_KEYS = (
    "mae",
    "mask_ratio",
    "wm_flat_vit",
    "rssm",
    "reward_head",
    "discount_head",
    "pred_discount",
    "actor",
    "critic",
    "eval_state_mean",
)


def unknown_key_error(
    key: str, valid, where: str = "MWMConfig", noun: str = "key"
) -> ValueError:
    close = difflib.get_close_matches(key, list(valid), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    listing = (
        f"Valid {noun}s: {', '.join(sorted(valid))}."
        if len(valid) <= 60
        else "See the configuration table in README.md."
    )
    return ValueError(f"Unknown {where} {noun} {key!r}.{hint} {listing}")


def _check_type(name: str, value: Any, default: Any) -> None:
    """Values must have the default's type (ints are accepted for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = True
    if not ok:
        raise ValueError(
            f"MWMConfig.{name} must be {type(default).__name__}, got {value!r}."
        )


def merge_mwm_value(name: str, current: Any, value: Any) -> Any:
    """Returns `value` merged into `current` (dicts key by key), type-checked."""
    default = MWM_DEFAULTS[name]
    if not isinstance(default, dict):
        if name != "clip_rewards":  # A string or a number to divide by.
            _check_type(name, value, default)
        return copy.deepcopy(value)
    if not isinstance(value, dict):
        raise ValueError(f"MWMConfig.{name} must be a dict, got {value!r}.")
    merged = copy.deepcopy(current)
    for key, sub in value.items():
        if key not in default:
            raise unknown_key_error(key, default, where=f"MWMConfig.{name}")
        _check_type(f"{name}.{key}", sub, default[key])
        merged[key] = sub
    return merged


#: Keys the presets set for RLlib's sampling loop, which the core loop does not use.
RLLIB_PRESET_KEYS = ("rollout_fragment_length", "min_sample_timesteps_per_iteration")


def mwm_settings(*presets: str, **overrides: Any) -> types.SimpleNamespace:
    """Every MWM key as an attribute (`settings.rssm["deter"]`), from the defaults,
    then `presets` in order (`PRESETS`), then `overrides` (dicts merge key by key),
    checked as `MWMConfig` checks them; for code without Ray (`rllib_mwm.core`).

    Besides the MWM keys: `gamma` (0.99), `lambda_` (0.95; `lambda` in a dict),
    `seed` (None) and `env_config` (the presets' env settings, merged)."""
    from rllib_mwm.core.validation import check_values

    values = copy.deepcopy(MWM_DEFAULTS)
    values.update(gamma=0.99, lambda_=0.95, seed=None, env_config={})
    steps = []
    for name in presets:
        if name not in PRESETS:
            raise unknown_key_error(name, PRESETS, where="MWM", noun="preset")
        steps.append(copy.deepcopy(PRESETS[name]))
    steps.append(dict(overrides))
    for step in steps:
        values["env_config"] = {**values["env_config"], **step.pop("env_config", {})}
        if "lambda" in step:
            step["lambda_"] = step.pop("lambda")
        for key, value in step.items():
            if key in ("gamma", "lambda_", "seed"):
                values[key] = value
            elif key in MWM_DEFAULTS:
                values[key] = merge_mwm_value(key, values[key], value)
            elif key not in RLLIB_PRESET_KEYS:
                raise unknown_key_error(key, [*MWM_DEFAULTS, "gamma", "lambda", "seed"])
    settings = types.SimpleNamespace(**values)
    check_values(settings)
    return settings
