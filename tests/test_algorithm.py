"""MWM as an RLlib Algorithm on the real simulators, with remote env runners.

One Meta-world algorithm (debug preset, one remote env runner, one remote
evaluation env runner) is trained step by step through the test module; each test
checks one promise of the schedule, replay, evaluation or checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
from helpers import assert_same_tree
from ray.rllib.core import DEFAULT_MODULE_ID

from rllib_mwm import MWM, MWMConfig
from rllib_mwm.tools.console import progress_line

TIME_LIMIT = 50  # agent steps per episode in the debug preset
OPEN_LOOP_TAG = "open_loop/truth_reconstruction_prediction"


def debug_config(env: str = "metaworld_reach", **training) -> MWMConfig:
    return helpers.debug_config(env, evaluation=True, **training)


@pytest.fixture(scope="module")
def algo(ray_session, tmp_path_factory):
    algo = debug_config(prefill=100, mae_pretrain=10, pretrain=1).build_algo()
    algo.report_dir = str(tmp_path_factory.mktemp("reports"))  # Not ~/ray_results.
    yield algo
    algo.stop()


def open_loop_images(directory) -> list:
    """The open-loop image summaries in the event files of `directory`."""
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    images = []
    for path in sorted(Path(directory).glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"images": 0})
        events.Reload()
        if OPEN_LOOP_TAG in events.Tags()["images"]:
            images += events.Images(OPEN_LOOP_TAG)
    return images


def assert_open_loop_report(directory) -> None:
    """An image summary and a GIF per report: 6 sequences of truth /
    reconstruction / prediction over time."""
    from PIL import Image

    images = open_loop_images(directory)
    gifs = sorted(Path(directory).glob("open_loop/*.gif"))
    assert images and len(gifs) == len(images), (images, gifs)
    assert {(i.height, i.width) for i in images} == {(3 * 64, 6 * 64)}
    gif = Image.open(gifs[0])
    assert gif.size == (6 * 64, 3 * 64) and gif.n_frames > 1


def learner(algo):
    return algo.learner_group._learner


def test_prefill_is_whole_uniform_random_episodes(algo):
    while algo.progress["phase"] == "prefill":
        algo.train()
    episodes = list(algo.replay_buffer.episodes.values())
    assert algo.replay_buffer.num_steps >= 100
    for episode in episodes:  # whole episodes, nothing else stored yet
        assert len(episode["obs"]) == TIME_LIMIT + 1 and episode["is_first"][0]
    actions = np.concatenate([e["actions"][1:] for e in episodes]).ravel()
    # Uniform on [-1, 1] (4 sigma bounds for >= 400 samples): mean 0, variance
    # 1/3, each tenth of the range hit a tenth of the time.
    assert abs(actions.mean()) < 0.12 and abs(actions.var() - 1 / 3) < 0.06
    hist = np.histogram(actions, bins=10, range=(-1, 1))[0] / actions.size
    np.testing.assert_allclose(hist, 0.1, atol=0.06)
    assert learner(algo).progress["mae_updates"] == 0


def test_pretraining_then_updates_follow_the_schedule(algo):
    # One `training_step` is one phase step (`train()` repeats it).
    while algo.progress["phase"] != "train":
        algo.training_step()
    state = learner(algo).progress  # Counted by the learner itself.
    # Reference order: 1 MAE + 1 world model, 10 − 1 MAE, 1 × (MAE + world model).
    assert state["mae_updates"] == 11 and state["world_model_updates"] == 2
    for _ in range(10):  # 10 agent steps each (1 runner, 1 env, fragment 10)
        algo.training_step()
    assert algo.progress["train_steps"] == 100
    # One world-model + actor-critic and one MAE update per 5 agent steps.
    assert state["world_model_updates"] == 2 + 20
    assert state["mae_updates"] == 11 + 20
    assert state["critic_updates"] == state["world_model_updates"]


def test_env_runners_act_with_the_learner_weights(algo):
    weights = learner(algo).module[DEFAULT_MODULE_ID].actor.state_dict()
    remote = algo.env_runner_group.foreach_env_runner(
        lambda runner: runner.module.actor.state_dict(), local_env_runner=False
    )[0]
    for key, value in weights.items():
        torch.testing.assert_close(remote[key], value)


def test_results_report_steps_frames_losses_and_evaluation(algo):
    result = algo.train()
    assert result["env_frames"] == 2 * result["agent_steps"]
    assert result["agent_steps"] == algo.progress["agent_steps"]
    losses = result["learners"][DEFAULT_MODULE_ID]
    for key in (
        "mae/mae_pixel_loss",
        "world_model/kl",
        "world_model/feature_loss",
        "actor/entropy",
        "critic/critic_loss",
        "world_model/grad_norm",
    ):
        assert np.isfinite(losses[key]), key
    assert result["replay"]["num_steps"] == algo.replay_buffer.num_steps
    while "agent_steps" not in result.get("evaluation", {}):
        result = algo.train()
    evaluation = result["evaluation"]["env_runners"]
    assert 0.0 <= evaluation["success_rate"] <= 1.0
    assert evaluation["episode_len_mean"] == TIME_LIMIT


def test_open_loop_video_is_written_to_tensorboard(algo):
    assert_open_loop_report(algo.report_dir)
    steps = [image.step for image in open_loop_images(algo.report_dir)]
    assert steps[-1] == algo.progress["last_video"] * algo.action_repeat  # frames


def test_checkpoint_restores_replay_counters_weights_and_optimizers(algo, tmp_path):
    path = algo.save_to_path(tmp_path / "checkpoint")
    saved = learner(algo).get_state()
    restored = MWM.from_checkpoint(path)
    restored.report_dir = str(tmp_path / "reports")
    try:
        state = learner(restored).get_state()
        module = DEFAULT_MODULE_ID
        for key, value in saved["rl_module"][module].items():
            np.testing.assert_array_equal(state["rl_module"][module][key], value)
        assert state["mwm_progress"] == saved["mwm_progress"]
        assert len(saved["optimizer"]) == 4  # mae, world_model, actor, critic
        assert_same_tree(state["optimizer"], saved["optimizer"])
        assert restored.progress == algo.progress
        old, new = algo.replay_buffer.episodes, restored.replay_buffer.episodes
        assert list(new) == list(old)
        for key in old:
            np.testing.assert_array_equal(new[key]["obs"], old[key]["obs"])
        # Training goes on: no prefill, no pretraining, the schedule continues.
        steps = restored.progress["agent_steps"]
        updates = learner(restored).progress["world_model_updates"]
        restored.train()
        assert restored.progress["phase"] == "train"
        sampled = restored.progress["agent_steps"] - steps
        assert 0 < sampled < 100
        assert learner(restored).progress["world_model_updates"] > updates
    finally:
        restored.stop()


def test_dmc_trains_with_two_env_runners(ray_session, tmp_path):
    config = debug_config("dmc_cartpole_balance", prefill=50, mae_pretrain=5)
    algo = config.env_runners(num_env_runners=2).build_algo()
    algo.report_dir = str(tmp_path)
    try:
        for _ in range(2):
            result = algo.train()
        while algo.progress["phase"] != "train":
            result = algo.train()
        steps = algo.progress["agent_steps"]
        algo.training_step()
        assert algo.progress["agent_steps"] - steps == 2 * 10  # both runners
        result = algo.train()
        assert np.isfinite(result["learners"][DEFAULT_MODULE_ID]["world_model/kl"])
        assert learner(algo).progress["world_model_updates"] >= 2
        # DMC has no success signal: no success rate rather than a made-up 0.
        assert "episode_return_mean" in result["env_runners"]  # episodes ended
        assert "success_rate" not in result["env_runners"]
        assert "success" not in progress_line(result)
    finally:
        algo.stop()


def test_tune_runs_a_grid_on_the_debug_preset(ray_session, tmp_path):
    from ray import tune

    config = debug_config(prefill=50, mae_pretrain=2, eval_eps=0)
    config.env_runners(num_env_runners=0).evaluation(evaluation_num_env_runners=0)
    param_space = config.to_dict()
    param_space["mask_ratio"] = tune.grid_search([0.5, 0.75])
    tuner = tune.Tuner(
        "MWM",
        param_space=param_space,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path), stop={"training_iteration": 2}, verbose=0
        ),
    )
    results = tuner.fit()
    assert len(results) == 2 and not results.errors
    ratios = sorted(r.config["mask_ratio"] for r in results)
    assert ratios == [0.5, 0.75]
    assert all(r.metrics["agent_steps"] >= 50 for r in results)
    for result in results:  # In the trial directory, beside Tune's own files.
        assert Path(result.path).parent.parent == tmp_path
        assert (Path(result.path) / "result.json").exists()
        assert_open_loop_report(result.path)
