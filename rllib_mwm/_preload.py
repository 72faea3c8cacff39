"""Process set-up that must run before MuJoCo, dm_control or Triton are imported.

- `MUJOCO_GL=egl` (unless the user chose a backend): headless rendering, on CPU
  through Mesa's llvmpipe.
- Triton before Mesa: Mesa's llvmpipe and Triton each carry their own LLVM, and
  loading Triton (torch.compile, timm → torchvision → torch._dynamo) after Mesa's EGL
  crashes the process with a segfault. `import ray.rllib` already loads dm_control's
  renderer (shimmy registers the dm_control envs), so we load Triton first. If
  Mesa was loaded first anyway, Triton is disabled for this process instead.
- glibc keeps freed memory for reuse (`rllib_mwm.perf.tune_allocator`): updates
  allocate and free hundreds of MB each, and returning it to the kernel each time
  cost ~40% of the update time in page faults.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings


def prepare_process() -> None:
    from rllib_mwm.perf import tune_allocator

    tune_allocator()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    render = sys.modules.get("dm_control._render")
    if render is not None and getattr(render, "BACKEND", None) == "egl":
        sys.modules["triton"] = None  # type: ignore[assignment]
        warnings.warn(
            "rllib_mwm: dm_control's EGL renderer was loaded before Triton, and "
            "loading Triton now would crash the process; Triton (torch.compile "
            "GPU kernels) is disabled here. Import rllib_mwm before ray.rllib to "
            "keep it.",
            stacklevel=3,
        )
        return
    import triton  # noqa: F401


#: Runs `prepare_process` in every Ray worker before it imports anything else.
WORKER_SETUP_HOOK = "rllib_mwm._preload.prepare_process"


def init_ray(**kwargs):
    """`ray.init(**kwargs)` whose workers are set up like this process.

    Workers inherit `MUJOCO_GL=egl` from the driver; any worker that then imports
    `ray.rllib` before Triton (every non-MWM algorithm, e.g. PPO's Adam importing
    torch._dynamo) would crash. The setup hook loads Triton first in each worker.
    """
    import ray

    import rllib_mwm

    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    runtime_env.setdefault("worker_process_setup_hook", WORKER_SETUP_HOOK)
    context = ray.init(runtime_env=runtime_env, **kwargs)
    rllib_mwm.register()  # Registrations made before an earlier shutdown are gone.
    return context
