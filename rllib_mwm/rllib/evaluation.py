"""MWM's evaluation (docs/algorithm.md §6): `eval_eps` episodes of the mode policy
every `eval_every` agent steps, the first right after pretraining, on the
evaluation env runners; evaluation episodes are not stored.

`MWMEvaluation` is the part of `MWM` that runs it. With
`evaluation_parallel_to_training` and remote evaluation env runners a due
evaluation starts before the iteration, with the weights of that moment, and is
reported by the first iteration after it finished (`evaluation/agent_steps` says
which weights it evaluated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger


def _evaluation_episodes(n: int):
    """An env-runner call: `n` fresh mode-policy episodes; returns the runner's
    metrics (not the episodes: evaluation episodes are not stored)."""

    def run(runner):
        runner.sample(num_episodes=n, explore=False, force_reset=True)
        return runner.get_metrics()

    return run


class MWMEvaluation:
    """`MWM.step` with MWM's evaluation schedule. Mixed into `MWM` before
    `Algorithm`, whose `step` `super()` reaches."""

    def step(self) -> dict[str, Any]:
        """RLlib's iteration, then an evaluation if `eval_every` agent steps passed
        since the last one (the first comes right after pretraining).

        With `evaluation_parallel_to_training` and remote evaluation env runners,
        a due evaluation is instead started before the iteration, with the weights
        of that moment, and reported by the first iteration after it finished
        (`evaluation/agent_steps` says which weights it evaluated).
        """
        progress = self.progress
        parallel = self._evaluates_in_parallel()
        if parallel and self._evaluation_due():
            self._start_evaluation()
        results = super().step()
        results["phase"] = progress["phase"]
        precision, reason = self._precision
        results["learner"] = {"precision": precision, "precision_reason": reason}
        if parallel:
            finished = self._finished_evaluation()
            if finished is not None:
                results["evaluation"] = finished
        elif self._evaluation_due():
            progress["last_eval"] = progress["agent_steps"]
            results.update(self._run_one_evaluation(parallel_train_future=None))
            results["evaluation"]["agent_steps"] = progress["agent_steps"]
            results["evaluation"]["env_frames"] = (
                progress["agent_steps"] * self.action_repeat
            )
        return results

    def _evaluation_due(self) -> bool:
        progress, config = self.progress, self.config
        return (
            progress["phase"] == "train"
            and config.eval_eps > 0
            and self._eval_started_at is None
            and (
                progress["last_eval"] is None
                or progress["agent_steps"] - progress["last_eval"] >= config.eval_every
            )
        )

    def _evaluates_in_parallel(self) -> bool:
        group = self.eval_env_runner_group
        return bool(
            self.config.evaluation_parallel_to_training
            and group is not None
            and group.num_healthy_remote_env_runners() > 0
        )

    def _start_evaluation(self) -> None:
        """`eval_eps` mode-policy episodes split over the evaluation env runners,
        requested asynchronously; the weights are read here, between updates."""
        progress, group = self.progress, self.eval_env_runner_group
        progress["last_eval"] = self._eval_started_at = progress["agent_steps"]
        group.sync_weights(
            from_worker_or_learner_group=self.learner_group, inference_only=True
        )
        ids = group.healthy_env_runner_ids()
        counts = [len(s) for s in np.array_split(range(self.config.eval_eps), len(ids))]
        self._eval_results = []
        group.foreach_env_runner_async(
            [_evaluation_episodes(n) for n in counts if n],
            tag="evaluation",
            remote_worker_ids=[i for i, n in zip(ids, counts, strict=True) if n],
        )

    def _finished_evaluation(self) -> dict[str, Any] | None:
        """The started evaluation's results once every runner has answered."""
        if self._eval_started_at is None:
            return None
        group = self.eval_env_runner_group
        ready = group.fetch_ready_async_reqs(tags="evaluation", timeout_seconds=0)
        self._eval_results.extend(result for _, result in ready)
        if group.num_in_flight_async_reqs("evaluation") > 0:
            return None
        logger = MetricsLogger(root=True)
        logger.aggregate(self._eval_results)
        steps, self._eval_started_at = self._eval_started_at, None
        return {
            ENV_RUNNER_RESULTS: logger.peek(),
            "agent_steps": steps,
            "env_frames": steps * self.action_repeat,
            "parallel_to_training": True,
        }

    @classmethod
    def _should_create_evaluation_env_runners(cls, eval_config) -> bool:
        return getattr(eval_config, "eval_eps", 0) > 0
