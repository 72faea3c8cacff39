"""Data-parallel pieces of `MWMTorchLearner` (`num_learners` ≥ 2).

RLlib's LearnerGroup starts one learner actor per `num_learners` and a
torch.distributed process group among them (gloo on CPU, NCCL on GPU). The
algorithm splits every global batch into `num_learners` equal shards along the
batch dimension (`split_batch`); learner `rank` trains on shard `rank`. RLlib's
usual DDP wrapper does not apply: DDP all-reduces from hooks on `.backward()`,
and each MWM optimizer takes `torch.autograd.grad(its loss, its parameters)`,
which those hooks never see. So the learners instead

- start from rank 0's weights (`broadcast_`, once, when built);
- average each optimizer's gradients with one all-reduce of one flat buffer
  (`all_reduce_mean`) before the norm, the clip and the non-finite check, so all
  learners see the same gradient, skip the same steps and keep equal weights;
- average every running statistic the same way (the reward magnitude);
- draw their noise as one learner on the global batch would (`ShardedRandom`).

Every loss is a mean over equal-sized shards, so the averaged gradient is the
gradient on the global batch, and with the same seed on every learner the
update equals one learner's on the global batch up to floating-point rounding.
"""

from __future__ import annotations

import numpy as np
import ray
import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

Tensor = torch.Tensor


def split_batch(batch: dict[str, np.ndarray], num: int) -> list[dict[str, np.ndarray]]:
    """`num` equal shards along the first (batch) dimension, in order: shard k holds
    rows k·B/num … (k+1)·B/num − 1 of every array (views, not copies)."""
    size = len(next(iter(batch.values())))
    if size % num:
        raise ValueError(
            f"a batch of {size} does not split into {num} equal shards: make the "
            "batch size a multiple of num_learners"
        )
    share = size // num
    return [
        {key: value[k * share : (k + 1) * share] for key, value in batch.items()}
        for k in range(num)
    ]


def _flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _views(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    chunks = flat.split([t.numel() for t in like])
    return [chunk.view_as(t) for chunk, t in zip(chunks, like, strict=True)]


@torch.no_grad()
def all_reduce_mean(tensors: list[Tensor]) -> list[Tensor]:
    """The mean over all learners of each tensor (one dtype), as views into one
    flat buffer reduced by a single all-reduce. Every learner gets the same bits
    back, so whatever is derived from them (norm, clip, skip) agrees."""
    flat = _flat(tensors)
    dist.all_reduce(flat)  # Sum: gloo has no AVG.
    flat /= dist.get_world_size()
    return _views(flat, tensors)


@torch.no_grad()
def broadcast_(tensors: list[Tensor], src: int = 0) -> None:
    """Overwrites `tensors` in place with learner `src`'s, one broadcast per dtype."""
    for dtype in dict.fromkeys(t.dtype for t in tensors):
        group = [t for t in tensors if t.dtype == dtype]
        flat = _flat(group)
        dist.broadcast(flat, src)
        torch._foreach_copy_(group, _views(flat, group))


class ShardedRandom(TorchFunctionMode):
    """Noise as one learner on the global batch would draw it.

    Inside this mode, a draw of `torch.rand` / `torch.randn` or the in-place
    `uniform_` / `normal_` / `exponential_` with leading dimension n (in MWM's
    update always the batch: masking noise (N, L), RSSM latents (B, S, C),
    imagined actions (N, A)) draws `world_size`·n rows and keeps rows
    rank·n … (rank+1)·n − 1. Learners with the same seed thus use exactly the
    noise of one learner on the concatenated shards; no two shards share noise
    either way. Other random functions are passed through unchanged.
    """

    FACTORIES = (torch.rand, torch.randn)
    IN_PLACE = (Tensor.uniform_, Tensor.normal_, Tensor.exponential_)

    def __init__(self, rank: int, world_size: int):
        super().__init__()
        self.rank, self.world_size = rank, world_size

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FACTORIES and "out" not in kwargs:
            size = kwargs.pop("size", None)
            if size is None:
                single = len(args) == 1 and not isinstance(args[0], int)
                size = args[0] if single else args
            if len(size):
                n = size[0]
                return self._rows(func((self.world_size * n, *size[1:]), **kwargs), n)
        elif func in self.IN_PLACE and args[0].dim():
            x, *rest = args
            full = x.new_empty((self.world_size * x.shape[0], *x.shape[1:]))
            func(full, *rest, **kwargs)
            with torch.no_grad():
                return x.copy_(self._rows(full, x.shape[0]))
        return func(*args, **kwargs)

    def _rows(self, full: Tensor, n: int) -> Tensor:
        return full.narrow(0, self.rank * n, n)


def on_shards(learner_group, method: str, batch: dict[str, np.ndarray]) -> list:
    """`learner.<method>(shard)` on every learner of `learner_group`; their results.

    One learner (local or remote) gets the whole batch. With n ≥ 2, `split_batch`'s
    shards go to Ray's object store and learner `rank` fetches shard `rank` only.
    """
    num = len(learner_group)  # 0 for a local learner
    if num <= 1:
        shards = [batch]
    else:
        shards = [ray.put(shard) for shard in split_batch(batch, num)]

    def run(learner):
        shard = shards[learner.rank]
        return getattr(learner, method)(ray.get(shard) if num > 1 else shard)

    return [result.get() for result in learner_group.foreach_learner(run)]
