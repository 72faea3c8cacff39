"""`MWMConfig`: every MWM hyperparameter with the reference defaults
(docs/algorithm.md §2–§7).

Keys follow RLlib where RLlib has the concept (`gamma`, `lambda_`, `seed`) and the
original MWM `configs.yaml` otherwise (`mae.reward_pred`, `rssm.deter`, `wmkl_minloss`,
...), nested the same way, so that `--mae.reward_pred True` maps one to one. Nested
dicts merge: `training(mae={"reward_pred": False})` keeps the other `mae` keys.
Unknown or mistyped keys raise at once with the closest valid names. The defaults
and presets are `rllib_mwm.core.defaults`, the value checks
`rllib_mwm.core.validation`.
"""

from __future__ import annotations

import copy
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

from rllib_mwm.core.defaults import (
    MODEL_KEYS,
    MWM_DEFAULTS,
    PRESETS,
    merge_mwm_value,
    unknown_key_error,
)
from rllib_mwm.core.envs.registry import check_env, is_task_name
from rllib_mwm.core.validation import check_values
from rllib_mwm.rllib.reporting import log_episode_success

logger = logging.getLogger(__name__)
#: `mwm_warnings` already logged in this process.
_WARNED: set[str] = set()

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


def _raise_if_set_elsewhere(key: str) -> None:
    """An RLlib key given to `training()` that another config method sets (e.g.
    `rollout_fragment_length`, an `env_runners()` key) raises naming it."""
    for method in _RLLIB_SETTERS:
        if key in inspect.signature(getattr(AlgorithmConfig, method)).parameters:
            raise ValueError(
                f"MWMConfig key {key!r} is not a training() key: set it with "
                f".{method}({key}=...) or in the config dict (update_from_dict, YAML)."
            )


class MWMConfig(AlgorithmConfig):
    """Configuration of the MWM algorithm.

    Example:
        config = MWMConfig().environment("metaworld_reach").training(mask_ratio=0.5)
    """

    def __init__(self, algo_class=None):
        if algo_class is None:
            from rllib_mwm.rllib.algorithm import MWM

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
                raise unknown_key_error(name, PRESETS, where="MWM", noun="preset")
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
                raise unknown_key_error(
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
        raise unknown_key_error(key, {k for k in valid if not k.startswith("_")})

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
        check_values(self)

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
        from rllib_mwm.rllib.rl_module import MWMTorchRLModule

        return RLModuleSpec(module_class=MWMTorchRLModule)

    def get_default_learner_class(self):
        from rllib_mwm.rllib.learner import MWMTorchLearner

        return MWMTorchLearner
