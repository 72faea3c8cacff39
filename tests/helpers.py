"""Small shared builders for the agent tests (tiny widths, real code paths)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rllib_mwm.core.replay.episodes import synthetic_batch
from rllib_mwm.rllib.config import MWMConfig

OBS_SPACE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

TINY = dict(
    mae=dict(embed_dim=64, depth=1, decoder_embed_dim=64, decoder_depth=1),
    wm_flat_vit=dict(embed_dim=32, depth=1, decoder_embed_dim=32, decoder_depth=1),
    rssm=dict(deter=64, hidden=64, stoch=8, discrete=8),
    reward_head=dict(layers=2, units=64),
    discount_head=dict(layers=2, units=64),
    actor=dict(layers=2, units=64),
    critic=dict(layers=2, units=64),
    imag_horizon=5,
)


def tiny_config(**overrides) -> MWMConfig:
    config = MWMConfig().environment(
        observation_space=OBS_SPACE, action_space=ACT_SPACE
    )
    return config.training(**{**TINY, **overrides})


def debug_config(
    env="metaworld_reach",
    *,
    runners: int = 1,
    envs_per_runner: int = 1,
    evaluation: bool = False,
    **training,
) -> MWMConfig:
    """The `debug` preset on `env` (Meta-world with `fast_render`), seed 0,
    `runners` remote env runners of half a CPU each (0: the local one), and one
    evaluation env runner with `evaluation`; `training` goes to `.training()`."""
    metaworld = isinstance(env, str) and env.startswith("metaworld")
    config = (
        MWMConfig()
        .environment(env, env_config={"fast_render": True} if metaworld else {})
        .preset("debug")
        .env_runners(
            num_env_runners=runners,
            num_envs_per_env_runner=envs_per_runner,
            **({"num_cpus_per_env_runner": 0.5} if runners else {}),
        )
        .debugging(seed=0)
    )
    if evaluation:
        config = config.evaluation(evaluation_num_env_runners=1)
    return config.training(**training)


def assert_same_tree(actual, expected, where: str = "") -> None:
    """Nested dicts, lists and tuples of arrays, tensors and scalars are bitwise
    equal: same keys, lengths, dtypes, shapes and bytes (floats by their bits)."""
    if isinstance(expected, torch.Tensor):
        actual, expected = (
            actual.detach().cpu().numpy(),
            expected.detach().cpu().numpy(),
        )
    if isinstance(expected, np.ndarray):
        actual = actual.detach().cpu().numpy() if torch.is_tensor(actual) else actual
        assert isinstance(actual, np.ndarray), where
        assert actual.dtype == expected.dtype, where
        assert actual.shape == expected.shape, where
        assert actual.tobytes() == expected.tobytes(), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            assert_same_tree(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_tree(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert np.float64(actual).tobytes() == np.float64(expected).tobytes(), where
    else:
        assert actual == expected, where


def build_learner(config: MWMConfig):
    config.validate_mwm()
    return config.build_learner(spaces={"default_policy": (OBS_SPACE, ACT_SPACE)})


def random_sequences(B: int, T: int, seed: int = 0) -> dict[str, np.ndarray]:
    return synthetic_batch(B, T, 4, np.random.default_rng(seed))


def load_script(name: str):
    """`scripts/<name>.py` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
