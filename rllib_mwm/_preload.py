"""Process set-up that must run before MuJoCo, dm_control or Triton are imported.

- `MUJOCO_GL=egl` (unless the user chose a backend): headless rendering, on CPU
  through Mesa's llvmpipe.
- Triton before Mesa: Mesa's llvmpipe and Triton each carry their own LLVM, and
  loading Triton (torch.compile, timm → torchvision → torch._dynamo) after Mesa's EGL
  crashes the process with a segfault. `import ray.rllib` already loads dm_control's
  renderer (shimmy registers the dm_control envs), so we load Triton first. If
  Mesa was loaded first anyway, Triton is disabled for this process instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings


def prepare_process() -> None:
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
