"""`MWM`: the RLlib Algorithm running Masked World Models' schedule
(docs/algorithm.md §6).

One `training_step` is one of three phases, kept in `self.progress`:

    prefill    whole episodes of uniform random actions on the env runners until
               `prefill` agent steps are stored (never mixed with module actions)
    pretrain   in the released code's order (`pretraining_plan`): 1 MAE + 1
               world-model update, `mae_pretrain − pretrain` MAE updates, then
               `pretrain` × (MAE + world-model) updates; in chunks of
               `PRETRAIN_CHUNK`, so iterations keep reporting
    train      each env runner samples `rollout_fragment_length` steps per env;
               then the updates owed by the schedule: one world-model +
               actor-critic update per `train_every` agent steps and one MAE
               update per `train_mae_every`, counted over all env runners
               (`train_steps` / `train_mae_steps` updates each time)

Overlap (`max_policy_lag` > 0, remote env runners): once a fragment is stored, the
next one is requested at once, so the env runners sample it while the learner runs
the updates owed for the stored one; the weights from those updates reach the
runners for the fragment after. The schedule is unchanged (updates are owed per
stored agent step over the whole run); what changes is the policy lag, the agent
steps stored since the weights a fragment starts with were synced: 0 when
sequential, one fragment of all runners with overlap, which must fit in
`max_policy_lag` or the iteration runs sequentially. Results report `policy_lag`
and the driver's time split under `time_split` (sample wait, learner, weight
sync, replay add).

Counts are agent steps (one policy decision, `action_repeat` env frames); results
report both `agent_steps` and `env_frames`, and `agent_steps` is what the original
`--steps` limits. Evaluation runs every `eval_every` agent steps (`MWM.step`), the
open-loop video every `log_every`, into `report_dir` (the trial directory under
Tune); evaluation is `rllib_mwm.rllib.evaluation`. Checkpoints hold the replay
buffer and `progress`, so a restored run neither prefills nor pretrains again
(`rllib_mwm.rllib.checkpoints`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS

from rllib_mwm.core.envs.registry import task_names
from rllib_mwm.core.envs.wrappers import EnvSettings
from rllib_mwm.core.replay.store import check_config_fits, replay_directory
from rllib_mwm.core.schedule import interleaved, owed_updates, pretraining_plan
from rllib_mwm.rllib.checkpoints import MWMCheckpoints
from rllib_mwm.rllib.config import MWMConfig
from rllib_mwm.rllib.data_parallel import on_shards
from rllib_mwm.rllib.evaluation import MWMEvaluation
from rllib_mwm.rllib.replay import MWMReplayBuffer
from rllib_mwm.rllib.reporting import TensorBoardVideo, open_loop_grid

#: Pretraining steps (one MAE update each) per `training_step` call.
PRETRAIN_CHUNK = 100
#: Sequences shown in the open-loop report and context frames before imagination.
VIDEO_SEQUENCES, VIDEO_CONTEXT = 6, 5


class MWM(MWMEvaluation, MWMCheckpoints, Algorithm):
    """Masked World Models (Seo et al., CoRL 2022) on RLlib's new API stack."""

    @classmethod
    def get_default_config(cls) -> MWMConfig:
        return MWMConfig(cls)

    def setup(self, config: MWMConfig) -> None:
        # Before any env starts: does the replay fit in RAM and on disk?
        directory = replay_directory(
            config, getattr(self, "_storage", None), self._trial_dir()
        )
        check_config_fits(config, directory)
        super().setup(config)
        self.replay_buffer = MWMReplayBuffer(
            capacity=config.replay["capacity"],
            minlen=config.replay["minlen"],
            maxlen=config.dataset["length"],
            prioritize_ends=config.replay["prioritize_ends"],
            seed=config.seed,
            directory=directory,
        )
        self._last_checkpoint = None  # Tune's newest complete one (`save`).
        # The precision the learner trains in, and why (results' `learner/...`).
        first, *_ = self.learner_group.foreach_learner(
            lambda learner: learner.precision_choice
        )
        self._precision = tuple(first.get())
        self.progress = {
            "phase": "prefill" if config.prefill > 0 else "pretrain",
            "agent_steps": 0,  # All sampled agent steps, prefill included.
            "train_steps": 0,  # Agent steps sampled by the policy after pretraining.
            "mae_pretrain_updates": 0,  # = pretraining steps done
            "world_model_updates": 0,  # Scheduled ones (pretraining excluded).
            "mae_updates": 0,
            "last_eval": None,
            "last_video": None,
        }
        self._video = None
        self._in_flight = None  # Policy lag of the fragment being sampled, if any.
        self._stored_since_sync = 0  # Agent steps stored since the last weight sync.
        self._eval_started_at = None  # Agent step of a parallel evaluation running.
        self._eval_results = []  # Its runners' metrics so far.
        self.report_dir = self._trial_dir()  # Open-loop reports; may be moved.
        env = config.env if isinstance(config.env, str) else None
        ours = env in task_names()
        self.action_repeat = (
            (config.env_config or {}).get("action_repeat", EnvSettings.action_repeat)
            if ours
            else 1
        )

    # ------------------------------------------------------------------ phases
    def training_step(self) -> None:
        phase = self.progress["phase"]
        start, steps = time.perf_counter(), 0
        if phase == "prefill":
            steps = self._prefill()
        elif phase == "pretrain":
            self._pretrain()
        else:
            steps = self._sample_and_train()
            self._maybe_report_video()
        self._log_progress(steps, time.perf_counter() - start)

    def _sample_and_train(self) -> int:
        """One fragment stored, then its updates; with overlap the next fragment is
        requested before the updates (module docstring). Returns the agent steps."""
        if self._in_flight is None:
            self._request_fragment()
        steps = self._collect_fragment()
        self.progress["train_steps"] += steps
        if self._overlap() and steps <= self.config.max_policy_lag:
            self._request_fragment()
        self._train()
        return steps

    def _overlap(self) -> bool:
        return (
            self.config.max_policy_lag > 0
            and self.env_runner_group.num_healthy_remote_env_runners() > 0
        )

    def _prefill(self) -> int:
        """One round of whole uniform-random episodes on every env runner."""
        steps = self._sample(num_episodes=1, random_actions=True)
        if self.progress["agent_steps"] >= self.config.prefill:
            self.progress["phase"] = "pretrain"
        return steps

    def _pretrain(self) -> None:
        """The next `PRETRAIN_CHUNK` steps of `pretraining_plan`."""
        config, progress = self.config, self.progress
        plan = pretraining_plan(config.mae_pretrain, config.pretrain)
        done = progress["mae_pretrain_updates"]
        chunk = plan[done : done + PRETRAIN_CHUNK]
        self._update([(True, world_model) for world_model in chunk])
        progress["mae_pretrain_updates"] += len(chunk)
        if progress["mae_pretrain_updates"] >= len(plan):
            progress["phase"] = "train"
            self._sync_weights()

    def _train(self) -> None:
        """The updates owed by the schedule for all agent steps stored so far."""
        progress = self.progress
        mae, world_model = owed_updates(
            self.config,
            progress["train_steps"],
            progress["mae_updates"],
            progress["world_model_updates"],
        )
        if mae or world_model:
            self._update(interleaved(mae, world_model))
            progress["world_model_updates"] += world_model
            progress["mae_updates"] += mae
            self._sync_weights()

    # ---------------------------------------------------------------- sampling
    def _sample(self, **sample_kwargs) -> int:
        """Samples on every (healthy) env runner, stores the chunks, returns the
        number of agent steps; `sample_kwargs` go to `EnvRunner.sample`."""
        group = self.env_runner_group
        remote = group.num_remote_env_runners() > 0
        with self._timed("sample_wait"):
            results = group.foreach_env_runner(
                lambda runner: (runner.sample(**sample_kwargs), runner.get_metrics()),
                local_env_runner=not remote,
            )
        return self._store(results)

    def _request_fragment(self) -> None:
        """Asks every healthy remote env runner for its next fragment (collected by
        `_collect_fragment`); without remote runners the local one samples then."""
        self._in_flight = self._stored_since_sync
        if self.env_runner_group.num_healthy_remote_env_runners() > 0:
            self.env_runner_group.foreach_env_runner_async(
                lambda runner: (runner.sample(), runner.get_metrics()), tag="fragment"
            )

    def _collect_fragment(self) -> int:
        """Waits for the requested fragment (a runner that died meanwhile delivers
        nothing; RLlib restarts it before the next iteration), stores it and logs
        the policy lag it was sampled with."""
        group = self.env_runner_group
        self.metrics.log_value("policy_lag", self._in_flight, reduce="max")
        self._in_flight = None
        if group.num_in_flight_async_reqs("fragment") == 0:
            return self._sample()  # The local env runner, sequentially.
        results = []
        with self._timed("sample_wait"):
            while group.num_in_flight_async_reqs("fragment") > 0:
                ready = group.fetch_ready_async_reqs(tags="fragment", timeout_seconds=1)
                results.extend(result for _, result in ready)
        return self._store(results)

    def _store(self, results: list) -> int:
        """(chunks, metrics) from each env runner → replay; returns agent steps."""
        episodes = [chunk for chunks, _ in results for chunk in chunks]
        self.metrics.aggregate([m for _, m in results], key=ENV_RUNNER_RESULTS)
        with self._timed("replay_add"):
            steps = self.replay_buffer.add(episodes)
            # Every live env continues its episode in every round, so an unfinished
            # episode without a chunk now was on a runner that died (RLlib restarts
            # it with fresh episodes): drop its partial steps.
            dropped = self.replay_buffer.drop_unfinished({e.id_ for e in episodes})
        self.metrics.log_value(
            "dropped_partial_episodes", dropped, reduce="lifetime_sum"
        )
        self.progress["agent_steps"] += steps
        self._stored_since_sync += steps
        return steps

    def _mae_batch(self) -> dict[str, np.ndarray]:
        spec = self.config.mae_dataset
        batch = self.replay_buffer.sample(spec["batch"], spec["length"])
        return {"obs": batch["obs"], "rewards": batch["rewards"]}

    def _world_model_batch(self) -> dict[str, np.ndarray]:
        spec = self.config.dataset
        batch = self.replay_buffer.sample(spec["batch"], spec["length"])
        batch.pop("success")
        return batch

    # ----------------------------------------------------------------- updates
    def _update(self, steps: list[tuple[bool, bool]]) -> None:
        """Runs each (MAE?, world model?) step in order, sampling every batch right
        before its update, so that one batch at a time is held; then reports the
        mean learner metrics over the steps."""
        with self._timed("learner"):
            for mae, world_model in steps:
                if mae:
                    self._learn("update_mae", self._mae_batch())
                if world_model:
                    self._learn("update_world_model", self._world_model_batch())
            results = self.learner_group.foreach_learner(
                lambda learner: learner.metrics.reduce()
            )
        self.metrics.aggregate([r.get() for r in results], key=LEARNER_RESULTS)

    def _learn(self, update: str, batch: dict[str, np.ndarray]) -> None:
        """`learner.<update>` on every learner, each on its shard of the global
        batch (`on_shards`); a remote learner's error is raised here."""
        on_shards(self.learner_group, update, batch)

    def _sync_weights(self) -> None:
        """Sends the learner's weights to the env runners (queued behind a fragment
        in flight, so they act from the next one on)."""
        with self._timed("weight_sync"):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, inference_only=True
            )
        self._stored_since_sync = 0

    @contextmanager
    def _timed(self, part: str):
        """Adds the driver's wall seconds in `part` to `time_split/<part>_s` (sums
        per iteration: what the learner process spends its time on)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.metrics.log_value(("time_split", f"{part}_s"), seconds, reduce="sum")

    # --------------------------------------------------------------- reporting
    def _log_progress(self, steps: int, seconds: float) -> None:
        progress, log = self.progress, self.metrics.log_value
        log("agent_steps", progress["agent_steps"], window=1)
        log("env_frames", progress["agent_steps"] * self.action_repeat, window=1)
        log("timesteps_total", progress["agent_steps"] * self.action_repeat, window=1)
        log(
            "mae_updates",
            progress["mae_updates"] + progress["mae_pretrain_updates"],
            window=1,
        )
        log("world_model_updates", progress["world_model_updates"], window=1)
        log(("replay", "num_steps"), self.replay_buffer.num_steps, window=1)
        log(("replay", "num_episodes"), len(self.replay_buffer.episodes), window=1)
        log(("replay", "num_bytes"), self.replay_buffer.nbytes, window=1)
        if steps:
            log("agent_steps_per_s", steps / max(seconds, 1e-9), reduce="mean")

    def _trial_dir(self) -> str:
        """Where the open-loop reports go: under Tune the trial directory
        (`<storage>/<experiment>/<trial>`, beside Tune's `result.json` and event
        file, where `tensorboard --logdir` looks), else `self.logdir`.

        Under Tune `self.logdir` is the trial's working directory in Ray's
        session temp dir, which is neither shown nor kept. A class trainable has
        no `ray.tune.get_context()` session, so the path comes from its storage
        context. Remote storage (s3://, gs://) cannot be written as a local
        path: the reports stay in the working directory, which Tune uploads to
        the trial directory with `SyncConfig(sync_artifacts=True)` (`rllib
        train` sets it for such storage).
        """
        import pyarrow.fs

        storage = getattr(self, "_storage", None)
        if storage is not None and isinstance(
            storage.storage_filesystem, pyarrow.fs.LocalFileSystem
        ):
            return storage.trial_fs_path
        return self.logdir

    def _maybe_report_video(self) -> None:
        progress, every = self.progress, self.config.log_every
        if (
            progress["last_video"] is not None
            and progress["agent_steps"] - progress["last_video"] < every
        ):
            return
        progress["last_video"] = progress["agent_steps"]
        length = self.config.dataset["length"]
        if length <= VIDEO_CONTEXT:
            return
        batch = self.replay_buffer.sample(VIDEO_SEQUENCES, length)
        results = self.learner_group.foreach_learner(  # One learner is enough.
            lambda learner: (
                learner.open_loop_video(batch, VIDEO_CONTEXT)
                if learner.rank == 0
                else None
            )
        )
        truth, recon, pred, mse = next(v for v in (r.get() for r in results) if v)
        self.metrics.log_value(("open_loop", "prediction_mse"), mse, window=1)
        if self._video is None:
            self._video = TensorBoardVideo(self.report_dir)
        self._video.write(
            "open_loop/truth_reconstruction_prediction",
            open_loop_grid(truth, recon, pred),
            step=progress["agent_steps"] * self.action_repeat,
        )

    def cleanup(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None
        super().cleanup()
