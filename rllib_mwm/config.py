"""`MWMConfig`: every MWM hyperparameter with the reference defaults
(docs/algorithm.md §2–§7).

Keys follow RLlib where RLlib has the concept (`gamma`, `lambda_`, `seed`) and the
original MWM `configs.yaml` otherwise (`mae.reward_pred`, `rssm.deter`, `wmkl_minloss`,
...), nested the same way, so that `--mae.reward_pred True` maps one to one. Nested
dicts merge: `training(mae={"reward_pred": False})` keeps the other `mae` keys.
Unknown or mistyped keys raise at once with the closest valid names.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import logging
import numbers
import warnings
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.connectors.common import AddStatesFromEpisodesToBatch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

with warnings.catch_warnings():
    # Importing RLlib's dreamerv3 package builds a debugging env that warns.
    warnings.simplefilter("ignore", UserWarning)
    from ray.rllib.algorithms.dreamerv3.utils.add_is_firsts_to_batch import (
        AddIsFirstsToBatch,
    )

from rllib_mwm.envs.registry import check_env, is_task_name
from rllib_mwm.nets.configs import network_configs
from rllib_mwm.reporting import log_episode_success

logger = logging.getLogger(__name__)
#: `mwm_warnings` already logged in this process.
_WARNED: set[str] = set()

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

#: Keys with a fixed set of values; a dotted name is a key of a nested dict.
_CHOICES = {
    "precision": ("auto", "fp32", "bf16"),
    "actor_grad": ("auto", "dynamics", "reinforce"),
    "wm_flat_vit.decoder": ("vit", "mlp"),
}
_RLLIB_TRAINING_KEYS = set(inspect.signature(AlgorithmConfig.training).parameters)
#: AlgorithmConfig methods that set keys, searched for a misplaced training() key.
_RLLIB_SETTERS = (
    "environment",
    "env_runners",
    "learners",
    "evaluation",
    "reporting",
    "checkpointing",
    "debugging",
    "fault_tolerance",
    "resources",
    "framework",
    "callbacks",
    "rl_module",
)
#: Keys RLlib's `update_from_dict` handles without a same-named attribute.
_RLLIB_DICT_KEYS = {"multiagent", "model", "_enable_new_api_stack"}


def _unknown_key_error(
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


def _raise_if_set_elsewhere(key: str) -> None:
    """An RLlib key given to `training()` that another config method sets (e.g.
    `rollout_fragment_length`, an `env_runners()` key) raises naming it."""
    for method in _RLLIB_SETTERS:
        if key in inspect.signature(getattr(AlgorithmConfig, method)).parameters:
            raise ValueError(
                f"MWMConfig key {key!r} is not a training() key: set it with "
                f".{method}({key}=...) or in the config dict (update_from_dict, YAML)."
            )


def _need(condition: bool, field: str, what: str) -> None:
    if not condition:
        raise ValueError(f"MWMConfig.{field} {what}.")


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
            raise _unknown_key_error(key, default, where=f"MWMConfig.{name}")
        _check_type(f"{name}.{key}", sub, default[key])
        merged[key] = sub
    return merged


class MWMConfig(AlgorithmConfig):
    """Configuration of the MWM algorithm.

    Example:
        config = MWMConfig().environment("metaworld_reach").training(mask_ratio=0.5)
    """

    def __init__(self, algo_class=None):
        if algo_class is None:
            from rllib_mwm.mwm import MWM

            algo_class = MWM
        super().__init__(algo_class=algo_class)
        for name, value in MWM_DEFAULTS.items():
            setattr(self, name, copy.deepcopy(value))
        self.gamma = 0.99
        self.lambda_ = 0.95
        self.lr = None  # Each optimizer has its own lr (`*_opt.lr`).
        self.train_batch_size = None
        # Agent steps per env runner and env between weight syncs; updates follow
        # the `train_every` schedule exactly whatever this is (MWM.training_step).
        self.rollout_fragment_length = 25
        self.min_sample_timesteps_per_iteration = 1000
        self.enable_rl_module_and_learner = True
        self.enable_env_runner_and_connector_v2 = True
        # Evaluation: `eval_eps` episodes of the mode policy every `eval_every`
        # agent steps on the evaluation env runners (MWM.step).
        self.evaluation_duration = MWM_DEFAULTS["eval_eps"]
        self.evaluation_duration_unit = "episodes"
        # RLlib waits 120 s for an evaluation runner's episodes and then reports
        # an empty evaluation, dropping the episodes: 5 DMC episodes (2500 agent
        # steps) on a busy 2-core CPU took longer. An hour still ends a hang.
        self.evaluation_sample_timeout_s = 3600.0
        self.evaluation_config = {"explore": False}
        self.callbacks_on_episode_end = log_episode_success

    def preset(self, *names: str) -> MWMConfig:
        """Applies presets in order (`PRESETS`: metaworld, dmc_vision, rlbench,
        cpu, debug); later ones override earlier ones, as the original `--configs`."""
        for name in names:
            if name not in PRESETS:
                raise _unknown_key_error(name, PRESETS, where="MWM", noun="preset")
            values = copy.deepcopy(PRESETS[name])
            env_config = values.pop("env_config", {})
            self.env_config = {**(self.env_config or {}), **env_config}
            self.update_from_dict(values)
        return self

    def training(self, **kwargs) -> MWMConfig:
        """Sets RLlib training keys and any MWM key (see `MWM_DEFAULTS`)."""
        rllib_kwargs = {
            k: kwargs.pop(k) for k in list(kwargs) if k in _RLLIB_TRAINING_KEYS
        }
        if "lambda_" in kwargs:
            self.lambda_ = float(kwargs.pop("lambda_"))
        super().training(**rllib_kwargs)
        for name, value in kwargs.items():
            if name not in MWM_DEFAULTS:
                _raise_if_set_elsewhere(name)
                raise _unknown_key_error(
                    name, set(MWM_DEFAULTS) | _RLLIB_TRAINING_KEYS | {"lambda_"}
                )
            setattr(self, name, merge_mwm_value(name, getattr(self, name), value))
        if "eval_eps" in kwargs:
            self.evaluation_duration = max(1, self.eval_eps)  # 0: no evaluation
        return self

    def update_from_dict(self, config_dict: dict) -> MWMConfig:
        """Routes MWM keys through `training()` so nested dicts merge; a
        `presets` list is applied first."""
        config_dict = dict(config_dict)
        presets = config_dict.pop("presets", [])
        self.preset(*([presets] if isinstance(presets, str) else presets))
        for key in config_dict:
            self._check_known_key(key)
        mwm = {k: config_dict.pop(k) for k in list(config_dict) if k in MWM_DEFAULTS}
        if "lambda" in config_dict:
            mwm["lambda_"] = config_dict.pop("lambda")
        super().update_from_dict(config_dict)
        return self.training(**mwm)

    def _check_known_key(self, key: str) -> None:
        """RLlib silently stores unknown keys as attributes; MWM rejects them."""
        name = self._translate_special_keys(key, warn_deprecated=False)
        if key.startswith("__"):  # Tune's own entries (__trial_info__, ...).
            return
        if (
            name in MWM_DEFAULTS
            or name in vars(self)
            or hasattr(type(self), name)
            or name in _RLLIB_DICT_KEYS
        ):
            return
        valid = set(MWM_DEFAULTS) | set(vars(self)) | {"presets", "lambda"}
        raise _unknown_key_error(key, {k for k in valid if not k.startswith("_")})

    def validate(self) -> None:
        gpus = self.num_gpus_per_learner
        if not isinstance(gpus, numbers.Real) or isinstance(gpus, bool):
            raise ValueError(
                f"MWMConfig.num_gpus_per_learner must be a number, got {gpus!r}; "
                "`auto` is for tuned-example YAML and `rllib train` only (in Python: "
                "1 if torch.cuda.is_available() else 0)"
            )
        super().validate()
        self.validate_mwm()
        for note in self.new_warnings():
            logger.warning("MWMConfig warning: %s", note)
        if is_task_name(self.env):
            check_env(self.env, dict(self.env_config or {}))
        if self.evaluation_interval:
            raise ValueError(
                "MWMConfig.evaluation_interval is not used by MWM: evaluation runs "
                "every `eval_every` agent steps; set `eval_every` instead."
            )
        for key in ("dataset", "mae_dataset"):
            batch = getattr(self, key)["batch"]
            if self.num_learners > 1 and batch % self.num_learners:
                raise ValueError(
                    f"MWMConfig.{key}.batch {batch} does not split over num_learners "
                    f"{self.num_learners} (each learner trains on batch / "
                    "num_learners sequences): make it a multiple of num_learners"
                )

    def mwm_warnings(self) -> list[str]:
        """Values that are legal but almost surely a mistake (`validate()` logs
        each once)."""
        notes = []
        capacity, prefill = self.replay["capacity"], self.prefill
        if capacity < prefill:
            notes.append(
                f"replay.capacity {capacity} is below prefill {prefill}: the replay "
                "drops random-action steps before training starts"
            )
        limit = (self.env_config or {}).get("time_limit")
        if isinstance(limit, int) and self.train_every > limit:
            notes.append(
                f"train_every {self.train_every} is above the episode length {limit} "
                "(env_config.time_limit): less than one update per episode"
            )
        return notes

    def new_warnings(self) -> list[str]:
        """`mwm_warnings` not yet given in this process; each is given once."""
        notes = [note for note in self.mwm_warnings() if note not in _WARNED]
        _WARNED.update(notes)
        return notes

    def _validate_evaluation_settings(self):
        # MWM schedules evaluation by `eval_every` agent steps (MWM.step), not by
        # RLlib's `evaluation_interval`; hide RLlib's "evaluation never runs" hint.
        interval = self.evaluation_interval
        self.evaluation_interval = interval or 1
        try:
            super()._validate_evaluation_settings()
        finally:
            self.evaluation_interval = interval

    def get_evaluation_config_object(self):
        """Evaluation env runners report each evaluation's own episodes."""
        eval_config = super().get_evaluation_config_object()
        if eval_config is not None:
            eval_config.metrics_num_episodes_for_smoothing = max(1, self.eval_eps)
        return eval_config

    def validate_mwm(self) -> None:
        """Checks every MWM key; raises `ValueError` naming the bad field."""
        for name, default in MWM_DEFAULTS.items():
            value = getattr(self, name)
            if isinstance(default, dict):
                missing = set(default) - set(value)
                if missing:
                    raise ValueError(f"MWMConfig.{name} lacks keys {sorted(missing)}.")
            merge_mwm_value(name, default, value)  # Raises on unknown keys/types.
        for name, choices in _CHOICES.items():
            attr, *keys = name.split(".")
            value = getattr(self, attr)
            for key in keys:
                value = value[key]
            if value not in choices:
                raise ValueError(
                    f"MWMConfig.{name} must be one of {choices}, got {value!r}."
                )
        self._validate_values()

    def _validate_values(self) -> None:
        """Every value alone and with the ones it must fit, then the networks'
        sizes (`network_configs`, the same builder the RLModule uses)."""
        self._validate_schedule()
        self._validate_replay()
        self._validate_losses_and_optimizers()
        network_configs({key: getattr(self, key) for key in MODEL_KEYS})

    def _validate_schedule(self) -> None:
        nonnegative = ("prefill", "mae_pretrain", "pretrain", "eval_eps")
        for name in (*nonnegative, "max_policy_lag"):
            _need(getattr(self, name) >= 0, name, "must be >= 0")
        positive = ("train_every", "train_mae_every", "train_steps", "train_mae_steps")
        for name in (*positive, "slow_target_update", "eval_every", "log_every"):
            _need(getattr(self, name) >= 1, name, "must be >= 1")
        _need(self.max_consecutive_skips >= 1, "max_consecutive_skips", "must be >= 1")
        for name in ("dataset", "mae_dataset"):
            for key in ("batch", "length"):
                _need(getattr(self, name)[key] >= 1, f"{name}.{key}", "must be >= 1")
        _need(self.imag_horizon >= 2, "imag_horizon", "must be >= 2")

    def _validate_replay(self) -> None:
        capacity = self.replay["capacity"]
        for name in ("dataset", "mae_dataset"):
            length = getattr(self, name)["length"]
            if capacity < length:
                raise ValueError(
                    f"MWMConfig.replay.capacity {capacity} holds less than one "
                    f"sequence of {name}.length {length}: try {max(length, 100_000)}."
                )
        directory = self.replay["directory"]
        _need(
            directory is None or (isinstance(directory, str) and directory != ""),
            "replay.directory",
            "must be a path (str) or None (None: <trial dir>/replay)",
        )
        _need(
            1 <= self.replay["minlen"] <= self.dataset["length"],
            "replay.minlen",
            "must be in [1, dataset.length] (windows are at most dataset.length)",
        )

    def _validate_losses_and_optimizers(self) -> None:
        _need(0.0 <= self.mask_ratio < 1.0, "mask_ratio", "must be in [0, 1)")
        _need(0.0 <= self.wmkl_balance <= 1.0, "wmkl_balance", "must be in [0, 1]")
        _need(0.0 < self.gamma <= 1.0, "gamma", "must be in (0, 1]")
        _need(0.0 < self.lambda_ <= 1.0, "lambda_", "must be in (0, 1]")
        heads = set(self.grad_heads)
        _need(
            heads <= {"reward", "discount"},
            "grad_heads",
            "may only list 'reward' and 'discount'",
        )
        _need(
            "discount" not in heads or self.pred_discount,
            "grad_heads",
            "lists 'discount' but pred_discount is False",
        )
        clip = self.clip_rewards
        _need(
            clip in ("identity", "sign", "tanh")
            or (
                isinstance(clip, numbers.Real)
                and not isinstance(clip, bool)
                and clip > 0
            ),
            "clip_rewards",
            "must be 'identity', 'sign', 'tanh' or a positive number",
        )
        scales = {f"loss_scales.{k}": v for k, v in self.loss_scales.items()}
        scales["wmkl.scale"], scales["aent.scale"] = (
            self.wmkl["scale"],
            self.aent["scale"],
        )
        for name, value in {**scales, "wmkl_minloss": self.wmkl_minloss}.items():
            _need(value >= 0, name, "must be >= 0")
        norm = self.reward_norm
        _need(0 <= norm["momentum"] <= 1, "reward_norm.momentum", "must be in [0, 1]")
        _need(norm["eps"] > 0, "reward_norm.eps", "must be > 0")
        for name in ("mae_opt", "model_opt", "actor_opt", "critic_opt"):
            opt = getattr(self, name)
            _need(opt["lr"] > 0 and opt["eps"] > 0, name, "needs lr > 0, eps > 0")
            _need(0.0 <= opt["wd"] < 1.0, f"{name}.wd", "must be in [0, 1)")
            _need(opt["clip"] > 0, f"{name}.clip", "must be > 0 (a gradient norm)")
            _need(opt["warmup"] >= 0, f"{name}.warmup", "must be >= 0 (updates)")

    def build_env_to_module_connector(self, env=None, spaces=None, device=None):
        """Adds RLlib's `is_first` column so the module resets its state
        (docs/algorithm.md §5)."""
        connector = super().build_env_to_module_connector(
            env=env, spaces=spaces, device=device
        )
        connector.insert_before(AddStatesFromEpisodesToBatch, AddIsFirstsToBatch())
        return connector

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return {key: copy.deepcopy(getattr(self, key)) for key in MODEL_KEYS}

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mwm.rl_module import MWMTorchRLModule

        return RLModuleSpec(module_class=MWMTorchRLModule)

    def get_default_learner_class(self):
        from rllib_mwm.learner import MWMTorchLearner

        return MWMTorchLearner
