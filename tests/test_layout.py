"""The package's three layers: `rllib_mwm.core` imports without Ray, no import
points up (core → rllib → tools), and the flat layout's module names still unpickle
(`rllib_mwm._compat`)."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rllib_mwm"

#: Run with `python -c` before anything else: `import ray` and `import ray.*` fail,
#: then each module named on the command line is imported; each one that fails is
#: printed as `NEEDS RAY <module>: <error>`.
WITHOUT_RAY = """
import importlib, importlib.abc, sys, traceback

class NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

assert "ray" not in sys.modules
sys.meta_path.insert(0, NoRay())
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException as error:
        last = traceback.extract_tb(error.__traceback__)[-1]
        print(f"NEEDS RAY {name}: {type(error).__name__}: {error} "
              f"({last.filename}:{last.lineno})")
import rllib_mwm
try:
    rllib_mwm.MWMConfig
except ImportError as error:
    print("MWMConfig:", error)
print("ray imported:", "ray" in sys.modules)
"""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in `path`, inside functions too; a
    `from package import name` also counts as importing `package.name`."""
    package = (
        module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    )
    package = package or module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_every_core_module_imports_without_ray():
    modules = [module_name(path) for path in layer_modules("core")]
    assert "rllib_mwm.core.losses" in modules and "rllib_mwm.core.nets.rssm" in modules
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, *modules],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    needs_ray = [line for line in result.stdout.splitlines() if "NEEDS RAY" in line]
    assert not needs_ray, "\n".join(needs_ray)
    assert "ray imported: False" in result.stdout, result.stdout
    # Without Ray the package's Ray names say what is missing.
    assert "MWMConfig: rllib_mwm.MWMConfig needs Ray" in result.stdout, result.stdout


def upward_imports(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in layer_modules(layer):
        for line, name in imported_modules(path):
            if name in forbidden or name.startswith(tuple(f"{f}." for f in forbidden)):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


def test_core_imports_nothing_from_the_plugin_the_tools_or_ray():
    # `import rllib_mwm` / `from rllib_mwm import x` would run the package's Ray part.
    names = {
        name for path in layer_modules("core") for _, name in imported_modules(path)
    }
    assert "rllib_mwm" not in names, "core imports the package (and with it Ray)"
    forbidden = ("rllib_mwm.rllib", "rllib_mwm.tools", "ray")
    assert not upward_imports("core", forbidden)


def test_the_plugin_imports_nothing_from_the_tools():
    names = {
        name for path in layer_modules("rllib") for _, name in imported_modules(path)
    }
    assert "rllib_mwm" not in names, "rllib/ imports the package's __init__"
    assert not upward_imports("rllib", ("rllib_mwm.tools",))


def test_the_project_imports_only_the_new_module_names():
    """The old names are for old pickles only; the code, tests and scripts use the
    modules the code lives in."""
    from rllib_mwm._compat import OLD_MODULES

    paths = [
        path
        for folder in ("rllib_mwm", "tests", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "_compat.py"
    ]
    old = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in paths
        for line, name in imported_modules(path)
        if name in OLD_MODULES
    ]
    assert not old


def old_reference(module: str, name: str) -> bytes:
    """A pickle of the reference `module.name` (GLOBAL opcode), as a checkpoint
    written by the flat layout holds it."""
    return f"c{module}\n{name}\n.".encode()


#: What RLlib and Tune pickle by reference (read in Ray 2.60): the Algorithm class
#: (`Checkpointable.save_to_path`'s class_and_ctor_args.pkl), the config (its
#: `get_state()` keeps `class` and `callbacks_on_episode_end`), the RLModule in the
#: module spec, the learner, the replay component, and Tune's callbacks and stoppers
#: in `tuner.pkl`.
OLD_REFERENCES = {
    ("rllib_mwm.mwm", "MWM"): ("rllib_mwm.rllib.algorithm", "MWM"),
    ("rllib_mwm.config", "MWMConfig"): ("rllib_mwm.rllib.config", "MWMConfig"),
    ("rllib_mwm.learner", "MWMTorchLearner"): (
        "rllib_mwm.rllib.learner",
        "MWMTorchLearner",
    ),
    ("rllib_mwm.rl_module", "MWMTorchRLModule"): (
        "rllib_mwm.rllib.rl_module",
        "MWMTorchRLModule",
    ),
    ("rllib_mwm.replay", "MWMReplayBuffer"): (
        "rllib_mwm.rllib.replay",
        "MWMReplayBuffer",
    ),
    ("rllib_mwm.reporting", "log_episode_success"): (
        "rllib_mwm.rllib.reporting",
        "log_episode_success",
    ),
    ("rllib_mwm.reporting", "ProgressPrinter"): (
        "rllib_mwm.tools.console",
        "ProgressPrinter",
    ),
    ("rllib_mwm.resume", "ResumeFromNewestCheckpoint"): (
        "rllib_mwm.tools.resume",
        "ResumeFromNewestCheckpoint",
    ),
    ("rllib_mwm.cluster", "BudgetStopper"): (
        "rllib_mwm.tools.cluster",
        "BudgetStopper",
    ),
    ("rllib_mwm.cluster", "BudgetProgressPrinter"): (
        "rllib_mwm.tools.cluster",
        "BudgetProgressPrinter",
    ),
    ("rllib_mwm.envs.registry", "create_from_context"): (
        "rllib_mwm.core.envs.registry",
        "create_from_context",
    ),
}


def test_every_old_name_forwards_to_modules_that_exist():
    import importlib.util

    from rllib_mwm import _compat

    for old, targets in _compat.OLD_MODULES.items():
        for target in targets:
            assert target not in _compat.OLD_MODULES, (old, target)
            spec = importlib.util.find_spec(target)
            assert spec is not None and spec.origin.endswith(".py"), (old, target)


@pytest.mark.parametrize(("old", "new"), OLD_REFERENCES.items(), ids=".".join)
def test_a_reference_pickled_under_the_flat_layout_loads_as_the_new_one(old, new):
    import importlib

    from ray import cloudpickle

    expected = getattr(importlib.import_module(new[0]), new[1])
    assert pickle.loads(old_reference(*old)) is expected
    assert cloudpickle.loads(old_reference(*old)) is expected
    assert pickle.loads(pickle.dumps(expected)) is expected  # New pickles: new path.
    assert f"{new[0]}\n".encode() in pickle.dumps(expected, protocol=0)


def test_an_old_config_state_unpickles_into_the_new_classes():
    """A config state as an old checkpoint's class_and_ctor_args.pkl holds it:
    classes and the episode callback under their flat-layout names."""
    from ray import cloudpickle

    from rllib_mwm import MWM, MWMConfig
    from rllib_mwm.rllib.reporting import log_episode_success

    state = MWMConfig().get_state()
    ctor_info = {"class": MWM, "ctor_args_and_kwargs": ((state,), {})}
    # Protocol 2 names each class as `c<module>\n<name>\n` (no frames to resize).
    data = cloudpickle.dumps(ctor_info, protocol=2)
    for new, old in (
        (b"rllib_mwm.rllib.algorithm\n", b"rllib_mwm.mwm\n"),
        (b"rllib_mwm.rllib.config\n", b"rllib_mwm.config\n"),
        (b"rllib_mwm.rllib.reporting\n", b"rllib_mwm.reporting\n"),
    ):
        assert new in data, new
        data = data.replace(new, old)
    assert b"rllib_mwm.rllib" not in data
    loaded = cloudpickle.loads(data)
    assert loaded["class"] is MWM
    restored = MWMConfig.from_state(loaded["ctor_args_and_kwargs"][0][0])
    assert type(restored) is MWMConfig
    assert restored.callbacks_on_episode_end is log_episode_success
    assert restored.mask_ratio == MWMConfig().mask_ratio


def test_the_original_flags_still_run_under_their_old_module_name():
    result = subprocess.run(
        [sys.executable, "-m", "rllib_mwm.train", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--logdir" in result.stdout
