"""Process set-up that must run before MuJoCo, dm_control or Triton are imported
(`prepare_process`; `rllib_mwm.rllib.registration.init_ray` runs it in every Ray
worker too).

- `MUJOCO_GL=egl` (unless the user chose a backend): headless rendering, on CPU
  through Mesa's llvmpipe. An unknown backend, or one whose library is missing,
  raises `RenderingBackendError` with the fix (`check_gl_backend`).
- Triton before Mesa: Mesa's llvmpipe and Triton each carry their own LLVM, and
  loading Triton (torch.compile, timm → torchvision → torch._dynamo) after Mesa's EGL
  crashes the process with a segfault. `import ray.rllib` already loads dm_control's
  renderer (shimmy registers the dm_control envs), so we load Triton first. If
  Mesa was loaded first anyway, Triton is disabled for this process instead.
- glibc keeps freed memory for reuse (`rllib_mwm.core.perf.tune_allocator`): updates
  allocate and free hundreds of MB each, and returning it to the kernel each time
  cost ~40% of the update time in page faults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Mapping

from rllib_mwm.core.errors import RenderingBackendError

#: MUJOCO_GL backends and the library each needs (glfw brings its own).
GL_LIBRARIES = {"egl": ("EGL", "libEGL.so.1"), "osmesa": ("OSMesa", "libOSMesa.so")}
GL_INSTALL = {"egl": "apt install libegl1", "osmesa": "apt install libosmesa6"}
#: Values dm_control and MuJoCo accept that turn rendering off or pick a default.
GL_OTHER = {"glfw", "", "0", "1", "disable", "disabled", "enable", "enabled"}
GL_OTHER |= {"false", "true", "off", "on"}


def prepare_process() -> None:
    from rllib_mwm.core.perf import tune_allocator

    tune_allocator()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    _load_triton_first()
    check_gl_backend()


@functools.cache
def gl_library_found(backend: str) -> bool:
    """Whether the library `backend` needs is installed (by name, else by loading
    its soname: `find_library` misses libraries found only on LD_LIBRARY_PATH)."""
    name, soname = GL_LIBRARIES[backend]
    if ctypes.util.find_library(name):
        return True
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def check_gl_backend(
    env: Mapping[str, str] = os.environ,
    found: Callable[[str], bool] = gl_library_found,
) -> None:
    """`MUJOCO_GL` must name a backend MuJoCo knows whose library is here."""
    backend = env.get("MUJOCO_GL", "egl")
    if backend in GL_LIBRARIES:
        if not found(backend):
            other = "osmesa" if backend == "egl" else "egl"
            raise RenderingBackendError(
                f"MUJOCO_GL={backend} but lib{GL_LIBRARIES[backend][0]} is not "
                f"installed: {GL_INSTALL[backend]}, or set MUJOCO_GL={other}"
            )
    elif backend == "glfw":
        if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
            raise RenderingBackendError(
                "MUJOCO_GL=glfw needs a display and DISPLAY is not set: set "
                "MUJOCO_GL=egl for headless rendering"
            )
    elif backend.lower() not in GL_OTHER:
        raise RenderingBackendError(
            f"MUJOCO_GL={backend!r} is not a rendering backend: set MUJOCO_GL to "
            "egl (headless), osmesa (headless, CPU) or glfw (a display)"
        )


def _load_triton_first() -> None:
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
            stacklevel=4,
        )
        return
    import triton  # noqa: F401
