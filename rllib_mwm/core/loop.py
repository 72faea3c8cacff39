"""MWM's training loop without Ray (docs/algorithm.md §6): envs, replay, the
schedule and evaluations in one process, the learner on any torch device.

    loop = CoreLoop("metaworld_reach", mwm_settings("metaworld"), device="cuda")
    report = loop.run(minutes=3)

Phases as the RLlib algorithm's: `prefill` (whole episodes of uniform random
actions on every env until `prefill` agent steps are stored), `pretrain`
(`pretraining_plan`), `train` (every env takes one policy step per round; the
updates the schedule owes then run, `owed_updates`). Evaluation: `eval_eps`
episodes of the mode policy on their own envs, one each, right after pretraining
and then every `eval_every` agent steps; they are not stored. The policy acts with
the weights of the last update (no lag), in float32.

Agent steps count every env step taken (prefill included), stored or still in an
unfinished episode, as the RLlib algorithm counts them. The report holds agent
steps, env frames, wall seconds per part and every evaluation's success rate and
mean return at its agent steps and env frames.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from rllib_mwm.core.defaults import MODEL_KEYS
from rllib_mwm.core.envs.registry import make_env
from rllib_mwm.core.learner import CoreLearner
from rllib_mwm.core.model import MWMModel
from rllib_mwm.core.replay.buffer import ReplayBuffer
from rllib_mwm.core.replay.episodes import (
    env_step,
    episode_arrays,
    random_episode,
    reset_step,
)
from rllib_mwm.core.schedule import interleaved, owed_updates, pretraining_plan


class CoreLoop:
    """One training run: `num_envs` envs, the replay, a `CoreLearner`."""

    def __init__(
        self,
        task: str,
        settings,
        *,
        device: str | None = None,
        num_envs: int = 1,
        seed: int = 0,
    ):
        self.settings, self.device = settings, device
        env_config = dict(settings.env_config)
        self.envs = [
            make_env(task, **{**env_config, "seed": seed + i}) for i in range(num_envs)
        ]
        self.eval_envs = [
            make_env(task, **{**env_config, "seed": seed + 10_000 + i})
            for i in range(settings.eval_eps)
        ]
        env = self.envs[0]
        self.action_repeat = getattr(env, "action_repeat", 1)
        model_config = {key: getattr(settings, key) for key in MODEL_KEYS}
        torch.manual_seed(seed)
        model = MWMModel(model_config, env.action_space, env.observation_space)
        self.learner = CoreLearner(model, settings, device)
        self.replay = ReplayBuffer(
            capacity=settings.replay["capacity"],
            minlen=settings.replay["minlen"],
            prioritize_ends=settings.replay["prioritize_ends"],
            seed=seed,
            maxlen=settings.dataset["length"],
        )
        self.rng = np.random.default_rng(seed)
        self.progress = {
            "phase": "prefill" if settings.prefill > 0 else "pretrain",
            "agent_steps": 0,
            "train_steps": 0,
            "mae_pretrain_updates": 0,
            "world_model_updates": 0,
            "mae_updates": 0,
            "last_eval": None,
        }
        self.seconds: dict[str, float] = defaultdict(float)
        self.evaluations: list[dict[str, Any]] = []
        self.last_metrics: dict[str, float] = {}
        self._episodes = [None] * num_envs  # Steps of each env's current episode.
        #: The policy's recurrent state, one row per env.
        self._state = self._initial_state(num_envs)

    # -------------------------------------------------------------------- run
    def run(self, minutes: float | None = None, agent_steps: int | None = None):
        """Runs until `minutes` of wall time or `agent_steps` have passed (checked
        between rounds and between pretraining updates); returns `report()`."""
        start = time.perf_counter()
        deadline = None if minutes is None else start + 60.0 * minutes

        def done() -> bool:
            late = deadline is not None and time.perf_counter() >= deadline
            enough = agent_steps is not None and self.progress["agent_steps"] >= (
                agent_steps
            )
            return late or enough

        while not done():
            phase = self.progress["phase"]
            if phase == "prefill":
                self._prefill_round()
            elif phase == "pretrain":
                self._pretrain(done)
            else:
                if self._evaluation_due():
                    self.evaluate()
                self._train_round()
        self.seconds["total"] = time.perf_counter() - start
        return self.report()

    def report(self) -> dict[str, Any]:
        progress = self.progress
        train = self.seconds.get("train", 0.0)
        return {
            **progress,
            "env_frames": progress["agent_steps"] * self.action_repeat,
            "num_envs": len(self.envs),
            "precision": self.learner.precision_choice,
            "seconds": dict(self.seconds),
            "train_agent_steps_per_s": progress["train_steps"] / train if train else 0,
            "evaluations": self.evaluations,
            "replay_steps": len(self.replay),
            "last_metrics": self.last_metrics,
        }

    # ----------------------------------------------------------------- phases
    def _prefill_round(self) -> None:
        """One whole uniform-random episode on every env."""
        with self._timed("prefill"):
            for env in self.envs:
                episode = random_episode(env, int(self.rng.integers(2**31)))
                self.replay.add_episode(episode)
                self.progress["agent_steps"] += len(episode["obs"]) - 1
        if self.progress["agent_steps"] >= self.settings.prefill:
            self.progress["phase"] = "pretrain"

    def _pretrain(self, done) -> None:
        settings, progress = self.settings, self.progress
        plan = pretraining_plan(settings.mae_pretrain, settings.pretrain)
        with self._timed("pretrain"):
            while progress["mae_pretrain_updates"] < len(plan) and not done():
                world_model = plan[progress["mae_pretrain_updates"]]
                self._update([(True, world_model)])
                progress["mae_pretrain_updates"] += 1
        if progress["mae_pretrain_updates"] >= len(plan):
            progress["phase"] = "train"

    def _train_round(self) -> None:
        """One policy step on every env, then the updates owed so far."""
        progress = self.progress
        with self._timed("train"):
            with self._timed("env_and_policy"):
                self._policy_round()
            mae, world_model = owed_updates(
                self.settings,
                progress["train_steps"],
                progress["mae_updates"],
                progress["world_model_updates"],
            )
            self._update(interleaved(mae, world_model))
            progress["mae_updates"] += mae
            progress["world_model_updates"] += world_model

    def _policy_round(self) -> None:
        model = self.learner.mwm_module
        obs, is_first = [], []
        for i, env in enumerate(self.envs):
            if self._episodes[i] is None:
                frame, _ = env.reset(seed=int(self.rng.integers(2**31)))
                self._episodes[i] = [reset_step(frame, env.action_space.shape)]
            obs.append(self._episodes[i][-1][0])
            is_first.append(len(self._episodes[i]) == 1)
        actions, self._state = self._act(model, obs, is_first, self._state, True)
        for i, env in enumerate(self.envs):
            frame, reward, terminated, truncated, info = env.step(actions[i])
            step = env_step(frame, actions[i], reward, terminated, info)
            self._episodes[i].append(step)
            if terminated or truncated:
                self.replay.add_episode(episode_arrays(self._episodes[i]))
                self._episodes[i] = None
        self.progress["train_steps"] += len(self.envs)
        self.progress["agent_steps"] += len(self.envs)

    # -------------------------------------------------------------- evaluation
    def _evaluation_due(self) -> bool:
        last = self.progress["last_eval"]
        return bool(self.eval_envs) and (
            last is None
            or self.progress["agent_steps"] - last >= self.settings.eval_every
        )

    def evaluate(self) -> dict[str, Any]:
        """`eval_eps` mode-policy episodes at once, one per evaluation env."""
        progress, model, envs = self.progress, self.learner.mwm_module, self.eval_envs
        progress["last_eval"] = progress["agent_steps"]
        start = time.perf_counter()
        frames = [env.reset(seed=int(self.rng.integers(2**31)))[0] for env in envs]
        state = self._initial_state(len(envs))
        returns, success = np.zeros(len(envs)), np.zeros(len(envs), bool)
        active, first = np.ones(len(envs), bool), True
        sample_state = not model.eval_state_mean
        while active.any():
            actions, state = self._act(
                model, frames, [first] * len(envs), state, False, sample_state
            )
            first = False
            for i in np.flatnonzero(active):
                frames[i], reward, terminated, truncated, info = envs[i].step(
                    actions[i]
                )
                returns[i] += reward
                success[i] |= bool(info.get("success", False))
                active[i] = not (terminated or truncated)
        result = {
            "agent_steps": progress["agent_steps"],
            "env_frames": progress["agent_steps"] * self.action_repeat,
            "success_rate": float(success.mean()),
            "return_mean": float(returns.mean()),
            "episodes": len(envs),
            "seconds": time.perf_counter() - start,
        }
        self.seconds["evaluation"] += result["seconds"]
        self.evaluations.append(result)
        return result

    # ----------------------------------------------------------------- helpers
    def _initial_state(self, n: int) -> dict[str, torch.Tensor]:
        initial = self.learner.mwm_module.get_initial_state()
        return {
            k: v.expand(n, *v.shape).to(self.device or "cpu")
            for k, v in initial.items()
        }

    @torch.no_grad()
    def _act(self, model, frames, is_first, state, explore, sample_state=True):
        device = self.device or "cpu"
        obs = torch.as_tensor(np.stack(frames)).to(device)[:, None]
        first = torch.as_tensor(is_first, dtype=torch.float32, device=device)[:, None]
        actions, state = model.act(
            obs, state, first, explore=explore, sample_state=sample_state
        )
        actions = actions[:, 0].float().cpu().numpy()
        return actions, state

    def _update(self, steps: list[tuple[bool, bool]]) -> None:
        settings = self.settings
        for mae, world_model in steps:
            if mae:
                spec = settings.mae_dataset
                batch = self.replay.sample(spec["batch"], spec["length"])
                with self._timed("update_mae"):
                    self.last_metrics.update(
                        self.learner.update_mae(
                            {"obs": batch["obs"], "rewards": batch["rewards"]}
                        )
                    )
            if world_model:
                spec = settings.dataset
                batch = self.replay.sample(spec["batch"], spec["length"])
                batch.pop("success")
                with self._timed("update_world_model"):
                    self.last_metrics.update(self.learner.update_world_model(batch))

    @contextmanager
    def _timed(self, part: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - start
