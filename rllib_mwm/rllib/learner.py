"""`MWMTorchLearner`: RLlib's TorchLearner running MWM's updates
(`rllib_mwm.core.training.MWMUpdates`: `update_mae`, `update_world_model`), with
the four optimizers registered with RLlib, so its checkpoints hold them.

This class adds what RLlib brings: the optimizers' registration, metrics through
RLlib's MetricsLogger, checkpoint state, and data-parallel learners. With
`num_learners` ≥ 2 each learner trains on its shard of the global batch and the
gradients of every optimizer step are averaged across learners before the norm,
clip and non-finite check (`rllib_mwm/rllib/data_parallel.py`). A learner whose
weights are not finite refuses to hand out its state (checkpoints, weight syncs).
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from rllib_mwm.core.learner import compile_transformers, make_optimizers
from rllib_mwm.core.open_loop import open_loop_prediction
from rllib_mwm.core.training import MWMUpdates
from rllib_mwm.rllib.data_parallel import ShardedRandom, all_reduce_mean, broadcast_


class MWMTorchLearner(MWMUpdates, TorchLearner):
    """Trains `MWMTorchRLModule` with the reference losses and optimizers."""

    def build(self) -> None:
        #: ids of the parameters that weight decay applies to (`decayed_parameters`).
        self.decayed = set()
        #: This learner's shard of each global batch and the number of shards.
        self.rank, self.world_size = 0, 1
        if self.distributed and dist.is_initialized():
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.average = all_reduce_mean if self.world_size > 1 else None
        super().build()
        self.init_update_state()
        if self.config.compile:
            compile_transformers(self.mwm_module)

    def _make_modules_ddp_if_necessary(self) -> None:
        """No DDP wrapper (its hooks never see `torch.autograd.grad`): the learners
        start from rank 0's weights and `_step` all-reduces the gradients."""
        if self.world_size > 1:
            broadcast_(list(self.mwm_module.state_dict().values()))

    @property
    def mwm_module(self):
        return self.module[DEFAULT_MODULE_ID]

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        optimizers, decayed = make_optimizers(self.module[module_id], config)
        self.decayed.update(decayed)
        for name, (optimizer, params) in optimizers.items():
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=optimizer,
                params=params,
            )

    def optimizer_and_params(self, name: str):
        optimizer = self.get_optimizer(DEFAULT_MODULE_ID, name)
        params = [self._params[ref] for ref in self._optimizer_parameters[optimizer]]
        return optimizer, params

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        raise NotImplementedError(
            "MWM has two update entry points with their own batches: "
            "MWMTorchLearner.update_mae and MWMTorchLearner.update_world_model."
        )

    def open_loop_video(self, batch: dict[str, Any], context: int = 5):
        """The open-loop report (`open_loop_prediction`) on `batch`: truth, MAE
        reconstruction and prediction, (N, T, H, W, 3) uint8 each, and the
        prediction's mean squared error after the context."""
        batch = self._to_tensors(batch)
        actions = self._action_vectors(batch["actions"])
        return open_loop_prediction(
            self.mwm_module, batch["obs"], actions, batch["is_first"], context
        )

    def _global_batch_noise(self):
        """With learners on shards, their noise as one learner's on the global
        batch (`ShardedRandom`)."""
        if self.world_size == 1:
            return super()._global_batch_noise()
        return ShardedRandom(self.rank, self.world_size)

    def _log(self, metrics) -> dict[str, float]:
        """Logs scalars once through RLlib's MetricsLogger; returns them as floats."""
        result = self._results(metrics)
        for key, value in result.items():
            # Mean over the updates between two `metrics.reduce()` calls; the
            # lifetime skip counters report their latest value.
            window = 1 if key.endswith("/skipped_updates") else None
            self.metrics.log_value(
                (DEFAULT_MODULE_ID, key), value, reduce="mean", window=window
            )
        return result

    # --------------------------------------------------------------- checkpoints
    def get_state(self, components=None, *, not_components=None, **kwargs):
        self._check_finite_weights()
        state = super().get_state(components, not_components=not_components, **kwargs)
        state["mwm_progress"] = self.update_state()
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        # "mwm_state": the key of checkpoints written before it was renamed.
        progress = state.get("mwm_progress", state.get("mwm_state"))
        if progress is not None:
            self.load_update_state(progress)
