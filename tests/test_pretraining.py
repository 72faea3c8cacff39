"""MWM's pretraining order and batch sampling, without simulators or Ray actors.

`MWM`'s methods run on a stand-in holding only what they read: a config, the
progress counters, a replay and a learner group that record every call.
"""

from __future__ import annotations

import types

import pytest

from rllib_mwm import MWM, MWMConfig
from rllib_mwm.core.schedule import pretraining_plan
from rllib_mwm.rllib.algorithm import PRETRAIN_CHUNK


class Recorder:
    """Replay, learner and learner group at once; `calls` lists what happened."""

    def __init__(self):
        self.calls: list[str] = []
        self.metrics = types.SimpleNamespace(reduce=self.reduce)

    # Replay.
    def sample(self, batch: int, length: int) -> dict:
        kind = "mae" if (batch, length) == (32, 32) else "wm"
        self.calls.append(f"sample {kind}")
        tag = f"{kind} batch {len(self.calls)}"
        return {"obs": tag, "rewards": tag, "success": tag}

    # Learner.
    def update_mae(self, batch: dict) -> None:
        assert self.calls[-1] == "sample mae" and batch["obs"].startswith("mae")
        self.calls.append("update mae")

    def update_world_model(self, batch: dict) -> None:
        assert self.calls[-1] == "sample wm" and "success" not in batch
        self.calls.append("update wm")

    def reduce(self) -> dict:
        self.calls.append("reduce")
        return {}

    rank = 0  # The only learner.

    # Learner group (a local learner: no remote ones).
    def __len__(self) -> int:
        return 0

    def foreach_learner(self, func):
        value = func(self)
        return [types.SimpleNamespace(get=lambda: value)]


def pretraining_algorithm(mae_pretrain: int, pretrain: int):
    methods = {k: v for k, v in vars(MWM).items() if callable(v)}
    methods["_sync_weights"] = lambda self: self.replay_buffer.calls.append("sync")
    algo = type("PretrainOnly", (), methods)()
    algo.config = MWMConfig().training(
        mae_pretrain=mae_pretrain, pretrain=pretrain, dataset={"batch": 50}
    )
    algo.replay_buffer = algo.learner_group = Recorder()
    algo.metrics = types.SimpleNamespace(
        aggregate=lambda results, key: None, log_value=lambda *args, **kwargs: None
    )
    algo.progress = {"phase": "pretrain", "mae_pretrain_updates": 0}
    return algo


@pytest.mark.parametrize(
    "mae_pretrain, pretrain, expected",
    [
        (5, 2, [True, False, False, False, True, True]),
        (3, 0, [True, False, False, False]),
        (1, 3, [True, True, True, True]),  # Fewer MAE-only steps than none: none.
        (0, 0, [True]),  # The reference always runs the first joint update.
    ],
)
def test_pretraining_plan_is_the_reference_order(mae_pretrain, pretrain, expected):
    assert pretraining_plan(mae_pretrain, pretrain) == expected


def test_pretraining_samples_each_batch_right_before_its_update():
    mae_pretrain, pretrain = 2 * PRETRAIN_CHUNK + 10, 3
    algo = pretraining_algorithm(mae_pretrain, pretrain)
    chunks = []
    while algo.progress["phase"] == "pretrain":
        calls = algo.replay_buffer.calls
        start = len(calls)
        algo._pretrain()
        chunks.append(calls[start:])
    mae_step = ["sample mae", "update mae"]
    joint_step = [*mae_step, "sample wm", "update wm"]
    steps = (
        [joint_step] + [mae_step] * (mae_pretrain - pretrain) + [joint_step] * pretrain
    )
    # Chunks of PRETRAIN_CHUNK steps, each reporting once; weights sync at the end.
    assert len(chunks) == 3
    expected = []
    for i in range(0, len(steps), PRETRAIN_CHUNK):
        expected.append(
            [call for step in steps[i : i + PRETRAIN_CHUNK] for call in step]
            + ["reduce"]
        )
    expected[-1].append("sync")
    assert chunks == expected
    assert algo.progress == {"phase": "train", "mae_pretrain_updates": len(steps)}


def test_training_updates_sample_each_batch_right_before_its_update():
    algo = pretraining_algorithm(0, 0)
    algo.progress = {
        "phase": "train",
        "train_steps": 10,
        "world_model_updates": 0,
        "mae_updates": 0,
    }
    algo._train()  # 10 agent steps: 2 MAE and 2 world-model updates owed.
    joint_step = ["sample mae", "update mae", "sample wm", "update wm"]
    assert algo.replay_buffer.calls == [*joint_step, *joint_step, "reduce", "sync"]
    assert (algo.progress["mae_updates"], algo.progress["world_model_updates"]) == (
        2,
        2,
    )
