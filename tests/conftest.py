"""Test set-up: headless rendering and the import order rllib_mwm needs."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402

import rllib_mwm  # noqa: E402,F401  (sets MUJOCO_GL before any simulator import)

torch.set_num_threads(1)
