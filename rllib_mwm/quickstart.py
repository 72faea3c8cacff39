"""Quick start: MWM's learner on a real Meta-world task, in a few minutes on a CPU.

    python -m rllib_mwm.quickstart [--task metaworld_reach] [--updates 150]

Collects random-policy episodes from the real simulator (the prefill of spec §6),
trains the MAE and the world model + actor-critic at debug widths on sequences
sampled from them, printing the losses as they fall, then runs one evaluation
episode with the learned (mode) policy. The full RLlib training loop
(`MWMConfig().build_algo()`) replaces this data collection by env runners.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import rllib_mwm  # noqa: E402  (process set-up first)
from rllib_mwm.config import MWMConfig  # noqa: E402
from rllib_mwm.episodes import random_episode, run_episode, sample_sequences  # noqa: E402

#: Debug widths: the reference architecture, scaled down to run on a laptop CPU.
DEBUG_MODEL = dict(
    mae=dict(
        embed_dim=64,
        depth=2,
        num_heads=4,
        decoder_embed_dim=64,
        decoder_depth=1,
        decoder_num_heads=4,
    ),
    wm_flat_vit=dict(embed_dim=64, depth=1, decoder_embed_dim=64, decoder_depth=1),
    rssm=dict(deter=128, hidden=128, stoch=16, discrete=16),
    reward_head=dict(layers=2, units=128),
    actor=dict(layers=2, units=128),
    critic=dict(layers=2, units=128),
    mae_opt=dict(warmup=20),
)


def build_learner(env, **overrides):
    config = (
        MWMConfig()
        .environment(
            observation_space=env.observation_space, action_space=env.action_space
        )
        .training(**{**DEBUG_MODEL, **overrides})
    )
    config.validate_mwm()
    spaces = {"default_policy": (env.observation_space, env.action_space)}
    return config, config.build_learner(spaces=spaces)


def policy_from(module):
    """Mode policy with the recurrent state carried across calls (spec §5)."""
    state = {k: v[None] for k, v in module.get_initial_state().items()}
    is_first = 1.0

    def act(obs):
        nonlocal state, is_first
        with torch.no_grad():
            action, state = module.act(
                torch.as_tensor(obs)[None, None],
                state,
                torch.tensor([[is_first]]),
                explore=False,
            )
        is_first = 0.0
        return action[0, 0].numpy()

    return act


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="metaworld_reach")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--time-limit", type=int, default=100, help="agent steps")
    parser.add_argument("--updates", type=int, default=150)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rng = np.random.default_rng(args.seed)

    env = rllib_mwm.make_env(args.task, seed=args.seed, time_limit=args.time_limit)
    start = time.time()
    episodes = [random_episode(env, args.seed + i) for i in range(args.episodes)]
    steps = sum(len(e["obs"]) - 1 for e in episodes)
    print(
        f"[{args.task}] collected {len(episodes)} random episodes, {steps} agent "
        f"steps in {time.time() - start:.0f}s; random return "
        f"{np.mean([e['rewards'].sum() for e in episodes]):.1f}"
    )

    _, learner = build_learner(env)
    start = time.time()
    for update in range(1, args.updates + 1):
        batch = sample_sequences(episodes, args.batch, args.length, rng)
        mae = learner.update_mae({"obs": batch["obs"], "rewards": batch["rewards"]})
        wm = learner.update_world_model(batch)
        if update == 1 or update % 10 == 0:
            print(
                f"update {update:4d}  mae/pixel {mae['mae/mae_pixel_loss']:.3f}  "
                f"wm/feature {wm['world_model/feature_loss']:.2f}  "
                f"wm/kl {wm['world_model/kl']:.2f}  "
                f"wm/reward {wm['world_model/reward_loss']:.3f}  "
                f"critic {wm['critic/critic_loss']:.3f}  "
                f"({time.time() - start:.0f}s)",
                flush=True,
            )
    episode = run_episode(env, policy_from(learner.mwm_module), seed=10_000)
    print(
        f"evaluation episode: return {episode['rewards'].sum():.1f}, "
        f"success {bool(episode['success'].any())}"
    )
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
