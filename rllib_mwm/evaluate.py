"""`rllib evaluate <checkpoint>`: roll out a saved policy, print return/success.

Works for any new-API-stack Algorithm checkpoint (`algo.save_to_path`, Tune trial
checkpoints): the config comes from the checkpoint, one local env runner loads the
module weights, and `--video` saves the agent's own observations (image
observations only, e.g. MWM's 64×64 frames) as a GIF.
"""

from __future__ import annotations

import pathlib
import pickle

import numpy as np

from rllib_mwm.reporting import episode_success, gif_bytes

MODULE_DIR = ("learner_group", "learner", "rl_module")


class CheckpointError(ValueError):
    """The path is not an RLlib Algorithm checkpoint."""


def load_config(path: pathlib.Path):
    """The AlgorithmConfig stored in an Algorithm checkpoint."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    ctor_file = path / "class_and_ctor_args.pkl"
    if not ctor_file.is_file() or not (path / pathlib.Path(*MODULE_DIR)).is_dir():
        raise CheckpointError(
            f"{path} is not an RLlib Algorithm checkpoint (no {ctor_file.name} and "
            f"{'/'.join(MODULE_DIR)}); pass the directory algo.save_to_path() or "
            "Tune's checkpoint_* wrote"
        )
    with open(ctor_file, "rb") as f:
        args, _ = pickle.load(f)["ctor_args_and_kwargs"]
    return AlgorithmConfig.from_state(args[0])


def evaluate_checkpoint(
    checkpoint: str, episodes: int = 10, video: str | None = None, explore=False
) -> int:
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rllib_mwm.cli import CLIError

    path = pathlib.Path(checkpoint).expanduser().resolve()
    try:
        config = load_config(path)
    except CheckpointError as error:
        raise CLIError(str(error)) from error
    config = config.copy(copy_frozen=False)
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=1)
    runner = SingleAgentEnvRunner(config=config)
    modules = path.joinpath(*MODULE_DIR)
    module_id = next(p.name for p in sorted(modules.iterdir()) if p.is_dir())
    runner.module.restore_from_path(modules / module_id)
    results = runner.sample(num_episodes=episodes, explore=explore)
    returns = [float(e.get_return()) for e in results]
    successes = [episode_success([e]) for e in results]
    reported = [s for s in successes if s is not None]
    rate = f"{np.mean(reported):.2f}" if reported else "n/a (env reports none)"
    print(
        f"{len(results)} episodes of {config.env}: return {np.mean(returns):.1f} "
        f"± {np.std(returns):.1f}, length {np.mean([len(e) for e in results]):.0f}, "
        f"success rate {rate}"
    )
    if video:
        _save_video(results, video)
    runner.stop()
    return 0


def _save_video(episodes, path: str) -> None:
    from rllib_mwm.cli import CLIError

    frames = np.concatenate([np.asarray(e.get_observations()) for e in episodes])
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise CLIError(
            f"--video needs image observations (H, W, 3); this env's are "
            f"{frames.shape[1:]}"
        )
    with open(path, "wb") as f:
        f.write(gif_bytes(frames.astype(np.uint8), fps=20))
    print(f"video: {path} ({len(frames)} frames)")
