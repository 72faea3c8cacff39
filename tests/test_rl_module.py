"""MWMTorchRLModule: acting with carried state, inference-only form, sizes."""

import numpy as np
import pytest
import torch
from helpers import ACT_SPACE, OBS_SPACE, tiny_config
from ray.rllib.core.columns import Columns

from rllib_mwm.rllib.config import MWMConfig


def _module(config, inference_only=False):
    spec = config.get_rl_module_spec(spaces={"default_policy": (OBS_SPACE, ACT_SPACE)})
    spec.inference_only = inference_only
    return spec.build()


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    return _module(tiny_config())


def _batch_state(module, B):
    return {
        k: v[None].repeat(B, *[1] * v.dim())
        for k, v in module.get_initial_state().items()
    }


def test_reference_parameter_counts_module_by_module():
    module = _module(MWMConfig())
    counts = {
        name: sum(p.numel() for p in getattr(module, name).parameters())
        for name in (
            "mae_encoder",
            "mae_decoder",
            "latent_encoder",
            "latent_decoder",
            "rssm",
            "reward_head",
            "critic",
            "actor",
        )
    }
    assert counts == {
        "mae_encoder": 3_358_432,
        "mae_decoder": 2_485_441,
        "latent_encoder": 429_696,
        "latent_decoder": 692_224,
        "rssm": 11_683_840,
        "reward_head": 1_837_569,
        "critic": 1_837_569,
        "actor": 1_841_160,
    }
    assert module.discount_head is None


def test_carried_forward_passes_equal_one_observe(module):
    B, T = 2, 6
    obs = torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8)
    is_first = torch.zeros(B, T)
    is_first[:, 0] = 1.0
    is_first[1, 3] = 1.0  # Episode boundary in the middle of env 1.
    state = _batch_state(module, B)
    # Perturb the carried state: is_first must wipe it.
    state = {k: v + 0.3 for k, v in state.items()}
    actions, deters = [], []
    with torch.no_grad():
        for t in range(T):
            a, state = module.act(
                obs[:, t : t + 1],
                state,
                is_first[:, t : t + 1],
                explore=False,
                sample_state=False,
            )
            actions.append(a[:, 0])
            deters.append(state["deter"])
        # One observe over the same sequence; actions[:, t] led to step t.
        prev = torch.stack([torch.zeros_like(actions[0])] + actions[:-1], 1)
        embed = module.embed(module.tokens(obs))
        post, _ = module.rssm.observe(embed, prev, is_first, sample=False)
    torch.testing.assert_close(torch.stack(deters, 1), post["deter"])
    # After the reset at t=3, env 1 matches a fresh run started there.
    with torch.no_grad():
        fresh, _ = module.rssm.observe(
            embed[1:, 3:], prev[1:, 3:], is_first[1:, 3:], sample=False
        )
    torch.testing.assert_close(fresh["deter"], post["deter"][1:, 3:])


def test_forward_exploration_and_inference_through_rllib_columns(module):
    B = 3
    batch = {
        Columns.OBS: torch.randint(0, 256, (B, 1, 64, 64, 3), dtype=torch.uint8),
        Columns.STATE_IN: _batch_state(module, B),
        "is_first": torch.ones(B, 1),
    }
    out = module.forward_exploration(batch)
    assert out[Columns.ACTIONS].shape == (B, 1, 4)
    assert out[Columns.ACTIONS].abs().max() < 1.0
    assert set(out[Columns.STATE_OUT]) == {"deter", "stoch", "action"}
    torch.testing.assert_close(
        out[Columns.STATE_OUT]["action"], out[Columns.ACTIONS][:, 0]
    )
    a1 = module.forward_inference(batch)[Columns.ACTIONS]
    a2 = module.forward_inference(batch)[Columns.ACTIONS]
    assert a1.shape == (B, 1, 4)
    # Mode actions differ only through the sampled posterior latent.
    assert torch.isfinite(a1).all() and torch.isfinite(a2).all()


def test_inference_only_module_drops_training_networks():
    config = tiny_config(pred_discount=True)
    full = _module(config)
    light = _module(config, inference_only=True)
    for name in (
        "mae_decoder",
        "latent_decoder",
        "reward_head",
        "discount_head",
        "critic",
        "slow_critic",
    ):
        assert getattr(full, name, None) is not None
        assert not hasattr(light, name)
    light.set_state(full.get_state(inference_only=True))
    for name, p in light.named_parameters():
        torch.testing.assert_close(p, dict(full.named_parameters())[name])


def test_initial_state_is_zero_and_unbatched(module):
    state = module.get_initial_state()
    assert state["deter"].shape == (64,) and state["stoch"].shape == (8, 8)
    assert all(float(v.abs().sum()) == 0.0 for v in state.values())
    assert np.prod(state["action"].shape) == 4
