"""Replays the released MWM code's golden updates on our learner.

A golden fixture (`mwm_golden_*.npz`, the keys in its README) holds three rounds of
(MAE update, world-model + actor-critic update) of the released TensorFlow code:
its initial weights, two fixed batches of real Meta-world frames, the uniforms of
every random draw, the metrics of each update and every variable after it.
`run_fixture` loads the same weights (`released.WEIGHT_TABLE`), replays the same
uniforms through the `nets.noise` seam and runs the same updates;
`metric_errors` and `change_errors` say how far each metric and each variable's
change in one update are from the released code's.
`tests/test_reference_parity.py` holds them to their bounds;
`scripts/reference_margins.py` writes the margins as JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rllib_mwm.core.nets.noise import uniforms_from
from rllib_mwm.rllib.config import MWMConfig
from rllib_mwm.rllib.released import (
    load_released_weights,
    released_arrays,
    resolve,
    translate_config,
    with_released_switches,
)

OBS_SPACE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)

#: Released metric → ours.
METRICS = {
    "image_loss": "mae/mae_pixel_loss",
    "mae_reward_loss": "mae/mae_reward_loss",
    "mae_loss": "mae/loss",
    "mae_grad_norm": "mae/grad_norm",
    "feature_loss": "world_model/feature_loss",
    "kl_loss": "world_model/kl_loss",
    "reward_loss": "world_model/reward_loss",
    "discount_loss": "world_model/discount_loss",
    "model_kl": "world_model/kl",
    "prior_ent": "world_model/prior_entropy",
    "post_ent": "world_model/post_entropy",
    "model_loss": "world_model/loss",
    "model_grad_norm": "world_model/grad_norm",
    "actor_loss": "actor/actor_loss",
    "actor_ent": "actor/entropy",
    "actor_grad_norm": "actor/grad_norm",
    "critic_loss": "critic/critic_loss",
    "critic_grad_norm": "critic/grad_norm",
    "critic": "critic/value_mean",
    "critic_slow": "actor/slow_value_mean",
    "critic_target": "actor/target_mean",
    "reward_mean": "actor/reward_mean",
    "reward_std": "actor/reward_std",
    "reward_normed_mean": "actor/reward_normed_mean",
    "reward_normed_std": "actor/reward_normed_std",
}
#: Released metrics we do not compute, and why.
NOT_COMPUTED = {
    "actor_ent_scale": "a constant (aent.scale)",
    "mae_lr": "logged as mae/lr",
}
#: Tape sites the released code draws but we do not: its unmasked MAE pass for the
#: world model draws (and ignores) mask noise, ours draws none at mask ratio 0; its
#: observe step samples the prior, whose stoch nothing reads (the KL reads logits).
UNDRAWN = {("wm_ac_update", "mae_mask_noise"), ("wm_ac_update", "observe_prior")}
PHASES = (("mae_update", "after_mae"), ("wm_ac_update", "after_wm_ac"))


class Tape:
    """Replays one update's recorded uniforms, call by call, per site."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.calls: Counter[str] = Counter()

    def __call__(self, site, shape, dtype, device) -> torch.Tensor:
        if site not in self.arrays:
            raise AssertionError(f"we draw at {site!r}, the released code does not")
        calls = self.arrays[site]
        index = self.calls[site]
        assert index < len(calls), f"{site}: more draws than the released code's"
        self.calls[site] += 1
        values = torch.as_tensor(calls[index]).reshape(shape)
        return values.to(device=device, dtype=dtype)

    def unused(self, update: str) -> dict[str, int]:
        return {
            site: len(calls) - self.calls[site]
            for site, calls in self.arrays.items()
            if self.calls[site] != len(calls) and (update, site) not in UNDRAWN
        }


def group(npz, prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: npz[k] for k in npz.files if k.startswith(prefix)}


def fixture_config(meta: dict, **overrides: Any) -> MWMConfig:
    """Our config for a fixture: its released config, translated, with the
    switches that reproduce the released code (then `overrides`). The replay
    sampler is not part of the fixtures: its minlen (50 there) is cut to the batch
    length."""
    ours = with_released_switches(translate_config(meta["config"]))
    for key in ("env", "env_config", "seed", "num_envs_per_env_runner"):
        ours.pop(key, None)
    ours["replay"]["minlen"] = min(ours["replay"]["minlen"], ours["dataset"]["length"])
    return MWMConfig().update_from_dict({**ours, **overrides})


def build_learner(config: MWMConfig, action_dim: int):
    act_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
    config.environment(observation_space=OBS_SPACE, action_space=act_space)
    config.validate_mwm()
    return config.build_learner(spaces={"default_policy": (OBS_SPACE, act_space)})


def _batch(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A fixture batch in our learner's keys."""
    return {
        "obs": arrays["image"],
        "actions": arrays["action"],
        "rewards": arrays["reward"],
        "is_first": arrays["is_first"],
        "is_terminal": arrays["is_terminal"],
    }


def load_meta(path: Path) -> dict:
    """A fixture's `meta_json`: `variant`, `config` (the released one), `rounds`..."""
    return json.loads(str(np.load(path)["meta_json"]))


def run_fixture(path: Path, **overrides: Any) -> dict:
    """Our three rounds on a fixture: metrics and variables after each update
    (`overrides`: config keys over the released ones, e.g. to measure a switch)."""
    npz, meta = np.load(path), load_meta(path)
    init = group(npz, "init/")
    batches = {name: _batch(group(npz, f"{name}_batch/")) for name in ("mae", "wm")}
    action_dim = batches["wm"]["actions"].shape[-1]
    learner = build_learner(fixture_config(meta, **overrides), action_dim)
    module = learner.module["default_policy"]
    state = load_released_weights(module, init)
    learner._reward_mag = torch.tensor(float(state["reward_norm"]), dtype=torch.float64)
    names = [n for n in init if resolve(n)[1] != "state"]
    result = {"npz": npz, "meta": meta, "init": released_arrays(module, names)}
    for r in range(1, meta["rounds"] + 1):
        for update, after in PHASES:
            tape = Tape(group(npz, f"tape/round{r}/{update}/"))
            with uniforms_from(tape):
                if update == "mae_update":
                    metrics = learner.update_mae(batches["mae"])
                else:
                    metrics = learner.update_world_model(batches["wm"])
            result[f"round{r}/{after}"] = released_arrays(module, names)
            result[f"round{r}/{after}/reward_norm"] = float(learner._reward_mag)
            result[f"metrics/round{r}/{update}"] = metrics
            result[f"tape/round{r}/{update}"] = tape.unused(update)
    return result


def rounds(result: dict):
    """(round, update, after) in the order the released code ran them."""
    for r in range(1, result["meta"]["rounds"] + 1):
        for update, after in PHASES:
            yield r, update, after


def metric_errors(result: dict) -> list[dict[str, Any]]:
    """Every released metric we compute, with ours and the absolute error."""
    rows = []
    for r, update, _ in rounds(result):
        ours = result[f"metrics/round{r}/{update}"]
        for name, value in group(result["npz"], f"metrics/round{r}/{update}/").items():
            if name in NOT_COMPUTED:
                continue
            if name not in METRICS:
                raise KeyError(f"released metric {name!r} is not mapped")
            ref, got = float(value), float(ours[METRICS[name]])
            rows.append(
                {
                    "round": r,
                    "update": update,
                    "metric": name,
                    "ours": got,
                    "released": ref,
                    "error": abs(got - ref),
                }
            )
    return rows


def change_errors(result: dict) -> list[dict[str, Any]]:
    """Each variable's change in each update: |Δ ours − Δ released| and |Δ released|."""
    npz, rows = result["npz"], []
    before_ours, before_ref = result["init"], group(npz, "init/")
    for r, _, after in rounds(result):
        after_ours = result[f"round{r}/{after}"]
        after_ref = group(npz, f"round{r}/{after}/")
        for name, ours in after_ours.items():
            delta_ref = after_ref[name] - before_ref[name]
            error = np.linalg.norm((ours - before_ours[name]) - delta_ref)
            rows.append(
                {
                    "round": r,
                    "after": after,
                    "variable": name,
                    "error": float(error),
                    "released_change": float(np.linalg.norm(delta_ref)),
                }
            )
        before_ours, before_ref = after_ours, after_ref
    return rows
