"""The module names of the flat layout, kept importable for old pickles.

RLlib and Tune pickle classes and functions by their dotted path: a checkpoint
holds the Algorithm class, the config (`MWMConfig`, its `callbacks_on_episode_end`),
the RLModule, learner and replay classes; `tuner.pkl` the Tune callbacks. Those
paths name modules of the flat layout (`rllib_mwm.mwm`, `rllib_mwm.learner`, ...).
`install()` (run by `import rllib_mwm`) adds a meta-path finder that answers each
old name with a small module forwarding attribute lookups to the modules the code
lives in now, so `pickle.loads` finds `rllib_mwm.mwm.MWM` as
`rllib_mwm.rllib.algorithm.MWM`; `python -m rllib_mwm.train` still runs the original
flags. New code imports the new paths (a test checks).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

_CORE, _RLLIB, _TOOLS = "rllib_mwm.core", "rllib_mwm.rllib", "rllib_mwm.tools"
_NETS = ("activations", "checks", "configs", "dists", "heads", "latent_vit", "mae")
_NETS += ("noise", "rssm", "vit")
_ENVS = ("dmc", "metaworld", "rlbench", "wrappers")

#: Old module → the modules its names live in now, searched in order.
OLD_MODULES: dict[str, tuple[str, ...]] = {
    "rllib_mwm._preload": (f"{_CORE}.process", f"{_RLLIB}.registration"),
    "rllib_mwm.cli": (f"{_TOOLS}.cli",),
    "rllib_mwm.cluster": (f"{_TOOLS}.cluster",),
    "rllib_mwm.config": (f"{_RLLIB}.config", f"{_CORE}.defaults"),
    "rllib_mwm.console": (f"{_TOOLS}.console",),
    "rllib_mwm.data_parallel": (f"{_RLLIB}.data_parallel",),
    "rllib_mwm.episodes": (f"{_CORE}.replay.episodes",),
    "rllib_mwm.errors": (f"{_CORE}.errors",),
    "rllib_mwm.evaluate": (f"{_TOOLS}.evaluate",),
    "rllib_mwm.golden": (f"{_RLLIB}.golden",),
    "rllib_mwm.learner": (
        f"{_RLLIB}.learner",
        f"{_CORE}.training",
        f"{_CORE}.learner",
        f"{_CORE}.update",
    ),
    "rllib_mwm.losses": (f"{_CORE}.losses",),
    "rllib_mwm.mwm": (
        f"{_RLLIB}.algorithm",
        f"{_RLLIB}.evaluation",
        f"{_RLLIB}.checkpoints",
    ),
    "rllib_mwm.perf": (f"{_CORE}.perf",),
    "rllib_mwm.plot": (f"{_TOOLS}.plot",),
    "rllib_mwm.released": (f"{_RLLIB}.released",),
    "rllib_mwm.replay": (f"{_RLLIB}.replay", f"{_CORE}.replay.buffer"),
    "rllib_mwm.replay_store": (f"{_CORE}.replay.store",),
    "rllib_mwm.report": (f"{_TOOLS}.report",),
    "rllib_mwm.reporting": (f"{_RLLIB}.reporting", f"{_TOOLS}.console"),
    "rllib_mwm.resume": (f"{_TOOLS}.resume", f"{_RLLIB}.checkpoints"),
    "rllib_mwm.rl_module": (f"{_RLLIB}.rl_module",),
    "rllib_mwm.train": (f"{_TOOLS}.train",),
    "rllib_mwm.rllib.defaults": (f"{_CORE}.defaults",),
    "rllib_mwm.rllib.validation": (f"{_CORE}.validation",),
    "rllib_mwm.nets": (f"{_CORE}.nets",),
    **{f"rllib_mwm.nets.{name}": (f"{_CORE}.nets.{name}",) for name in _NETS},
    "rllib_mwm.envs": (f"{_CORE}.envs", f"{_RLLIB}.registration"),
    "rllib_mwm.envs.registry": (f"{_CORE}.envs.registry", f"{_RLLIB}.registration"),
    **{f"rllib_mwm.envs.{name}": (f"{_CORE}.envs.{name}",) for name in _ENVS},
}
#: Old names that were packages (their submodules are old names too).
_PACKAGES = {"rllib_mwm.nets", "rllib_mwm.envs"}


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds each of `OLD_MODULES` as a module forwarding to its new modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in OLD_MODULES:
            return None
        return importlib.util.spec_from_loader(
            fullname, self, is_package=fullname in _PACKAGES
        )

    def create_module(self, spec):
        return None  # The default module.

    def get_code(self, fullname: str):
        """`python -m <old name>` (`python -m rllib_mwm.train`) runs the module
        it moved to."""
        spec = importlib.util.find_spec(OLD_MODULES[fullname][0])
        return spec.loader.get_code(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        targets = OLD_MODULES[module.__name__]
        module.__doc__ = f"Old name of {', '.join(targets)} (for old pickles)."
        module.__getattr__ = _forward(module.__name__, targets)


def _forward(old: str, targets: tuple[str, ...]):
    def __getattr__(name: str):
        for target in targets:
            new = importlib.import_module(target)
            if hasattr(new, name):
                return getattr(new, name)
        raise AttributeError(
            f"module {old!r} (now {', '.join(targets)}) has no {name!r}"
        )

    return __getattr__


def install() -> None:
    """Adds the finder to `sys.meta_path` once (after the regular finders: only
    names no file answers reach it)."""
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.append(_OldNames())
