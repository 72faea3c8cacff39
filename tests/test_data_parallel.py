"""Data-parallel learners (`num_learners` ≥ 2, rllib_mwm/rllib/data_parallel.py).

The MWM update draws noise (MAE masks, RSSM latent samples, imagined actions), so
learners on shards match one learner on the combined batch only if they draw that
batch's noise: `ShardedRandom` makes them. The tests below then compare exactly:
two gloo learners on halves against one learner on the whole, same seed; every
weight must agree to fp rounding and the two learners must agree bit for bit.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
from helpers import build_learner, debug_config, random_sequences, tiny_config

from rllib_mwm.rllib.config import MWMConfig
from rllib_mwm.rllib.data_parallel import ShardedRandom, split_batch

WORLD = 2
B, T = 4, 4  # Global batch: 4 sequences of 4 steps, 2 per learner.
INIT_SEED, DRAW_SEED = 100, 7
#: A small clip, so that clipping is active (it must see the averaged gradient),
#: reward normalization on (its running magnitude must be the global batch's), no
#: MAE warm-up (lr 0 at the first update would hide the MAE's step).
SETTINGS = dict(
    precision="fp32",
    model_opt={"clip": 0.5},
    actor_opt={"clip": 0.5},
    mae_opt={"warmup": 0, "clip": 0.5},
    reward_norm={"momentum": 0.5},
)
#: (MAE update?, world-model update?, NaN reward in the second shard?) per step.
PLAN = [(True, True, False), (True, True, True), (False, True, False)]
WM_SKIPPED = "world_model/skipped_step"


def batches() -> list[tuple[dict, dict]]:
    """(MAE batch, world-model batch) per step of `PLAN`, global."""
    out = []
    for step, (_, _, nan) in enumerate(PLAN):
        seq = random_sequences(B, T, seed=step)
        if nan:
            seq["rewards"][B - 1, 2] = np.nan  # Only the second learner sees it.
        out.append(({"obs": seq["obs"], "rewards": seq["rewards"]}, seq))
    return out


def train(learner, rank: int = 0, world: int = 1) -> tuple[dict, list, dict]:
    """Runs `PLAN` on this learner's shard; (weights, per-update metrics,
    `counters`)."""
    torch.manual_seed(DRAW_SEED)  # The same generator state on every learner.
    metrics = []
    for (mae, world_model, _), (mae_batch, wm_batch) in zip(
        PLAN, batches(), strict=True
    ):
        if mae:
            metrics.append(learner.update_mae(split_batch(mae_batch, world)[rank]))
        if world_model:
            shard = split_batch(wm_batch, world)[rank]
            metrics.append(learner.update_world_model(shard))
    return weights_of(learner), metrics, counters(learner)


def weights_of(learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.mwm_module.state_dict().items()}


def counters(learner) -> dict:
    """Update counts, skipped steps and the reward normalizer's magnitude."""
    return {**learner.progress, "reward_mag": learner._reward_mag.item()}


def gloo_learner(rank: int, port: int, out_dir: str) -> None:
    """One of `WORLD` learners in a gloo process group, as RLlib's LearnerGroup
    makes them (without Ray); each starts from different weights."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(INIT_SEED + rank)  # Rank 1's own init is overwritten.
        config = tiny_config(**SETTINGS).learners(num_learners=WORLD)
        learner = build_learner(config)
        assert (learner.rank, learner.world_size) == (rank, WORLD)
        torch.save(train(learner, rank, WORLD), f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one learner on the global batches, [each gloo learner on its shards], the
    initial weights); runs as `train` returns them. The one learner trains while
    the gloo learners start."""
    out_dir = tmp_path_factory.mktemp("data_parallel")
    processes = torch.multiprocessing.spawn(
        gloo_learner, args=(free_port(), str(out_dir)), nprocs=WORLD, join=False
    )
    torch.manual_seed(INIT_SEED)
    learner = build_learner(tiny_config(**SETTINGS))
    init = weights_of(learner)
    single = train(learner)
    while not processes.join():
        pass
    learners = [
        torch.load(out_dir / f"{r}.pt", weights_only=False) for r in range(WORLD)
    ]
    return single, learners, init


def test_learners_on_shards_keep_identical_weights(runs):
    (w0, m0, s0), (w1, m1, s1) = runs[1]
    assert w0.keys() == w1.keys()
    different = [k for k in w0 if not torch.equal(w0[k], w1[k])]
    assert not different, different
    assert s0 == s1
    # Identical gradient norms and skip decisions, though the losses differ.
    for a, b in zip(m0, m1, strict=True):
        for key in a:
            if key.endswith(("grad_norm", "skipped_step", "lr")):
                np.testing.assert_equal(a[key], b[key], err_msg=key)
    assert m0[0]["mae/mae_pixel_loss"] != m1[0]["mae/mae_pixel_loss"]


def test_learners_on_shards_equal_one_learner_on_the_combined_batch(runs):
    (weights, metrics, state), ((w0, m0, s0), _), init = runs
    assert s0.pop("reward_mag") == pytest.approx(state.pop("reward_mag"), rel=1e-5)
    assert s0 == state
    # Every step's gradient norm: the average of the shards' gradients is the
    # combined batch's gradient (a sum would double it).
    for a, b in zip(m0, metrics, strict=True):
        norms = [k for k in b if k.endswith("grad_norm")]
        assert norms
        for key in norms:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=key)
    # Step 2's NaN reward (in learner 1's shard) skipped the world-model step on
    # every learner, as it does for the one learner.
    for run in (metrics, m0):
        skipped = [m[key] for m in run for key in m if key == WM_SKIPPED]
        assert skipped == [0, 1, 0]
    assert weights.keys() == w0.keys()
    for key in weights:
        torch.testing.assert_close(w0[key], weights[key], rtol=1e-4, atol=1e-6)
    # ... while the updates themselves were far larger than that tolerance.
    moved = max((weights[k] - init[k]).abs().max() for k in init)
    assert moved > 3e-4  # At least one Adam step of lr 3e-4.


def test_split_batch_cuts_rows_in_order():
    batch = {"obs": np.arange(12).reshape(6, 2), "rewards": np.arange(6)}
    shards = split_batch(batch, 3)
    assert [s["rewards"].tolist() for s in shards] == [[0, 1], [2, 3], [4, 5]]
    np.testing.assert_array_equal(shards[2]["obs"], [[8, 9], [10, 11]])
    with pytest.raises(ValueError, match="batch of 6 does not split into 4"):
        split_batch(batch, 4)


@pytest.mark.parametrize(
    "draw",
    [
        lambda n: torch.rand(n, 5),
        lambda n: torch.rand((n, 5), dtype=torch.float64),
        lambda n: torch.randn(torch.Size([n, 2, 4])),
        lambda n: torch.rand(size=(n,)),
        lambda n: torch.empty(n, 4).exponential_(),
        lambda n: torch.empty(n, 4).uniform_(-1, 1),
        lambda n: torch.empty(n, 4).normal_(),
    ],
)
def test_sharded_draws_are_slices_of_one_draw_for_the_global_batch(draw):
    torch.manual_seed(0)
    whole = draw(6)  # One learner, the global batch of 6.
    parts = []
    for rank in range(2):  # Two learners with 3 each, same generator state.
        torch.manual_seed(0)
        with ShardedRandom(rank, 2):
            parts.append(draw(3))
    assert parts[0].shape == (3, *whole.shape[1:])
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)


def test_config_batches_must_split_over_the_learners():
    MWMConfig().learners(num_learners=2).validate()  # 16 and 32 sequences
    with pytest.raises(ValueError, match=r"dataset.batch 16 does not split over"):
        MWMConfig().learners(num_learners=3).validate()
    with pytest.raises(ValueError, match=r"mae_dataset.batch 6 does not split"):
        config = MWMConfig().training(mae_dataset={"batch": 6})
        config.learners(num_learners=4).validate()


def synthetic_episode(length: int, seed: int) -> dict[str, np.ndarray]:
    """One stored episode of random frames (replay layout, `rllib_mwm.rllib.replay`)."""
    rng = np.random.default_rng(seed)
    rows = random_sequences(1, length, seed=seed)
    episode = {k: v[0] for k, v in rows.items()}
    episode["rewards"] = rng.uniform(0, 1, length).astype(np.float32)
    episode["success"] = np.zeros(length, bool)
    return episode


@pytest.mark.slow
def test_mwm_with_two_learners_matches_one_learner(ray_session, tmp_path):
    """Through RLlib: `MWM._update` with `num_learners=2` (remote learners, gloo
    group made by RLlib, shards through the object store) against a local learner
    on the same replay and weights; then two `train()` iterations (prefill,
    pretraining) keep the two learners identical."""
    from ray.rllib.core import DEFAULT_MODULE_ID
    from ray.rllib.utils.metrics import LEARNER_RESULTS

    config = debug_config(
        runners=0, eval_eps=0, precision="fp32", reward_norm={"momentum": 0.5}
    )

    def weights(algo):  # A lambda: Ray pickles it by value.
        results = algo.learner_group.foreach_learner(
            lambda learner: {
                k: v.detach().clone()
                for k, v in learner.mwm_module.state_dict().items()
            }
        )
        return [r.get() for r in results]

    try:
        algos = [config.copy().learners(num_learners=2).build_algo()]
        algos.append(config.build_algo())  # One local learner.
        state = algos[0].learner_group.get_state()
        algos[1].learner_group.set_state(state)
        init = weights(algos[1])[0]
        for algo in algos:
            algo.report_dir = str(tmp_path)
            for i in range(4):
                algo.replay_buffer.add_episode(synthetic_episode(40, seed=i))
            algo.learner_group.foreach_learner(lambda _: torch.manual_seed(7))
            algo._update([(True, True), (True, True)])

        (w0, w1), (one,) = weights(algos[0]), weights(algos[1])
        assert all(torch.equal(w0[k], w1[k]) for k in w0)
        moved = max((one[k] - init[k]).abs().max() for k in one)
        assert moved > 3e-4
        for key in one:
            torch.testing.assert_close(w0[key], one[key], rtol=1e-4, atol=1e-6)
        key = (LEARNER_RESULTS, DEFAULT_MODULE_ID, "world_model/grad_norm")
        norms = [algo.metrics.peek(key) for algo in algos]
        assert norms[0] == pytest.approx(norms[1], rel=1e-4)
        for _ in range(6):  # Prefill, then pretraining through `MWM._learn`.
            if algos[0].progress["phase"] == "train":
                break
            algos[0].train()
        assert algos[0].progress["phase"] == "train"
        w0, w1 = weights(algos[0])
        assert all(torch.equal(w0[k], w1[k]) for k in w0)
    finally:
        for algo in locals().get("algos", []):
            algo.stop()
