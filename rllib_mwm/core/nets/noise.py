"""The one seam through which MWM's networks draw their randomness.

Every random draw is a tensor of uniforms in [0, 1) from `uniform(site, shape)`,
turned into a sample by the code at that site (docs/algorithm.md §2–§4):

- `mae_mask_noise` (N, L): the kept tokens, the first int(L·(1 − ratio)) of the
  argsort (`random_masking`);
- `observe_prior`, `observe_posterior`, `imagine_prior` (B, stoch): one-hot
  categoricals by inverse CDF (`OneHotST.sample`);
- `imagine_action` (N, A): the actor's truncated normal by inverse CDF
  (`TruncNormalST.rsample`);
- `act` (B, A) or (B,): the acting policy's sample in the env runners.

The uniforms come from torch's generator unless `uniforms_from(source)` is active:
then `source(site, shape, dtype, device)` gives them, e.g. the recorded tapes of the
released code's golden updates (tests/test_reference_parity.py).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch

#: (site, shape, dtype, device) -> uniforms of that shape.
UniformSource = Callable[[str, tuple, torch.dtype, torch.device], torch.Tensor]

_SOURCE: contextvars.ContextVar[UniformSource | None] = contextvars.ContextVar(
    "uniform_source", default=None
)


def uniform(
    site: str,
    shape: tuple[int, ...],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniforms in [0, 1) of `shape` for the draw at `site`."""
    source = _SOURCE.get()
    if source is None:
        return torch.rand(shape, device=device, dtype=dtype)
    values = source(site, tuple(shape), dtype, torch.device(device or "cpu"))
    assert tuple(values.shape) == tuple(shape), (site, values.shape, shape)
    return values


@contextlib.contextmanager
def uniforms_from(source: UniformSource) -> Iterator[None]:
    """Draws every uniform inside the block from `source` instead of torch."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)
