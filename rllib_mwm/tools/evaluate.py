"""`rllib evaluate <checkpoint>`: roll out a saved policy, print its mean return
(and success rate, for envs that report success), save the agent's view as a GIF.

Works for any new-API-stack Algorithm checkpoint (`algo.save_to_path`, Tune trial
checkpoints): the config comes from the checkpoint, one local env runner loads the
module weights. The GIF holds the agent's own observations (image observations
only, e.g. MWM's 64×64 frames) of all episodes, by default beside the checkpoint
as `<checkpoint>_eval.gif`; envs with other observations get no GIF unless
`--video` asks for one (then it is an error).
"""

from __future__ import annotations

import pathlib
import pickle

import numpy as np

from rllib_mwm.core.errors import CLIError
from rllib_mwm.rllib.reporting import episode_success, gif_bytes

MODULE_DIR = ("learner_group", "learner", "rl_module")
VIDEO_FPS = 20


class CheckpointError(ValueError):
    """The path is not an RLlib Algorithm checkpoint."""


def load_config(path: pathlib.Path):
    """The AlgorithmConfig stored in an Algorithm checkpoint."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist; pass a checkpoint directory (e.g. "
            "<trial dir>/checkpoint_000003)"
        )
    ctor_file = path / "class_and_ctor_args.pkl"
    if not ctor_file.is_file() or not (path / pathlib.Path(*MODULE_DIR)).is_dir():
        raise CheckpointError(
            f"{path} is not an RLlib Algorithm checkpoint (no {ctor_file.name} and "
            f"{'/'.join(MODULE_DIR)}); pass the directory algo.save_to_path() or "
            "Tune's checkpoint_* wrote"
        )
    try:
        with open(ctor_file, "rb") as f:
            args, _ = pickle.load(f)["ctor_args_and_kwargs"]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path} is damaged ({ctor_file.name} cannot be read: "
            f"{type(error).__name__}); use another checkpoint of the run"
        ) from error
    return AlgorithmConfig.from_state(args[0])


def default_video_path(checkpoint: pathlib.Path) -> pathlib.Path:
    """`<trial>/checkpoint_000003` → `<trial>/checkpoint_000003_eval.gif`."""
    return checkpoint.with_name(f"{checkpoint.name}_eval.gif")


def evaluate_checkpoint(
    checkpoint: str,
    episodes: int = 10,
    video: str | None = None,
    explore: bool = False,
    verbose: bool = False,
) -> int:
    """Prints the episodes' mean return (and success rate) and writes the GIF
    (`video`, default `default_video_path`)."""
    if not verbose:
        from rllib_mwm.tools.console import quiet_console

        quiet_console()
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    path = pathlib.Path(checkpoint).expanduser().resolve()
    try:
        config = load_config(path)
    except CheckpointError as error:
        raise CLIError(str(error)) from error
    config = config.copy(copy_frozen=False)
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=1)
    runner = SingleAgentEnvRunner(config=config)
    try:
        modules = path.joinpath(*MODULE_DIR)
        module_id = next(p.name for p in sorted(modules.iterdir()) if p.is_dir())
        runner.module.restore_from_path(modules / module_id)
        results = runner.sample(num_episodes=episodes, explore=explore)
        print(episodes_line(config.env, results), flush=True)
        _save_video(results, video, default_video_path(path))
    finally:
        runner.stop()
    return 0


def episodes_line(env, episodes) -> str:
    """`10 episodes of metaworld_reach: return 12.3 ± 4.5, length 50, success
    rate 0.40`; no success rate for envs that never report success."""
    returns = [float(e.get_return()) for e in episodes]
    line = (
        f"{len(episodes)} episodes of {env}: return {np.mean(returns):.1f} "
        f"± {np.std(returns):.1f}, length {np.mean([len(e) for e in episodes]):.0f}"
    )
    successes = [episode_success([e]) for e in episodes]
    reported = [s for s in successes if s is not None]
    if reported:
        line += f", success rate {np.mean(reported):.2f}"
    return line


def _save_video(episodes, video: str | None, default: pathlib.Path) -> None:
    frames = np.concatenate([np.asarray(e.get_observations()) for e in episodes])
    if frames.ndim != 4 or frames.shape[-1] != 3:
        if video:
            raise CLIError(
                f"--video needs image observations (H, W, 3); this env's are "
                f"{frames.shape[1:]}"
            )
        print(f"no video: observations of shape {frames.shape[1:]} are not images")
        return
    path = pathlib.Path(video) if video else default
    path.write_bytes(gif_bytes(frames.astype(np.uint8), fps=VIDEO_FPS))
    print(f"video: {path} ({len(frames)} frames, {len(episodes)} episodes)")
