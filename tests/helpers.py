"""Small shared builders for the agent tests (tiny widths, real code paths)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np

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
