"""`CoreLearner`: MWM's updates (`rllib_mwm.core.training.MWMUpdates`) over an
`MWMModel` with its own four fused Adam optimizers; no Ray. The loop without Ray
(`rllib_mwm.core.loop`) and the update benchmark train with it; RLlib's
`MWMTorchLearner` runs the same updates on optimizers it registers with RLlib
(`make_optimizers`)."""

from __future__ import annotations

import torch

from rllib_mwm.core.training import MWMUpdates
from rllib_mwm.core.update import OPTIMIZERS, decayed_parameters


def make_optimizers(module, config) -> tuple[dict[str, tuple], set[int]]:
    """Optimizer name → (fused Adam, its parameters), and the ids of the
    parameters that weight decay applies to (`decayed_parameters`)."""
    optimizers, decayed = {}, set()
    for name, (opt_key, nets) in OPTIMIZERS.items():
        settings = getattr(config, opt_key)
        params = [
            p
            for net in nets
            if getattr(module, net, None) is not None
            for p in getattr(module, net).parameters()
        ]
        decayed.update(
            id(p) for p in decayed_parameters(module, nets, everything=name == "mae")
        )
        # Fused Adam (CPU and CUDA): one kernel for all parameters, and it skips
        # the whole step on device when `found_inf` is set (`optimizer_step`).
        optimizers[name] = (
            torch.optim.Adam(
                params, lr=settings["lr"], eps=settings["eps"], fused=True
            ),
            params,
        )
    return optimizers, decayed


class CoreLearner(MWMUpdates):
    """`MWMUpdates` over an `MWMModel` with its own optimizers (no Ray).

    `config`: `rllib_mwm.core.defaults.mwm_settings(...)` or an `MWMConfig`."""

    def __init__(self, module, config, device: str | None = None):
        self.config = config
        self._device = device
        self.mwm_module = module.to(device or "cpu")
        self.optimizers, self.decayed = make_optimizers(self.mwm_module, config)
        self.init_update_state()
        if getattr(config, "compile", False):
            compile_transformers(self.mwm_module)

    def optimizer_and_params(self, name: str):
        return self.optimizers[name]


def compile_transformers(module) -> None:
    """`torch.compile` (inductor) on every transformer stack, in place (the
    state-dict keys stay); one compilation per batch shape. The RSSM step stays
    eager (docs/benchmarks.md: what compiling measured)."""
    from rllib_mwm.core.nets.vit import TransformerStack

    for net in module.modules():
        if isinstance(net, TransformerStack):
            net.compile(dynamic=False)
