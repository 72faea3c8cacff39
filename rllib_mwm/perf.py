"""Speed plumbing for the learner: precision, the allocator, profiler phases.

- `resolve_precision`: `precision: auto` means bf16 autocast on CUDA and on CPUs
  with bf16 matrix units (AMX-BF16), fp32 everywhere else. Detected, not assumed.
- `tune_allocator`: every update allocates and frees activations of tens to
  hundreds of MB. glibc returns such blocks to the kernel on free (mmap/trim) and
  faults them in again on the next update, which cost ~40% of the CPU update
  time in system calls and page faults. `prepare_process` calls this in every
  process that imports `rllib_mwm` (the CLI, Ray workers, scripts): glibc then
  keeps freed memory for reuse.
- `phase(name)`: a `torch.profiler` label around one part of an update; the
  benchmark (`scripts/bench_updates.py`) reports time per label.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

import torch

#: Profiler labels of the update phases, in update order.
PHASES = (
    "mae/forward",
    "mae/backward",
    "mae/optimizer",
    "world_model/tokens",
    "world_model/forward",
    "world_model/observe",
    "world_model/backward",
    "world_model/optimizer",
    "actor_critic/imagine",
    "actor_critic/targets",
    "actor/backward",
    "actor/optimizer",
    "critic/forward",
    "critic/backward",
    "critic/optimizer",
)


def phase(name: str):
    """`torch.profiler.record_function(name)`; `name` must be one of `PHASES`."""
    assert name in PHASES, name
    return torch.profiler.record_function(name)


# ----------------------------------------------------------------- precision
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def cpu_has_bf16_units() -> bool:
    """True when the CPU has AMX-BF16 tiles (bf16 matmuls several times fp32's
    rate). AVX512-BF16 alone gives about fp32 speed, so it does not count."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    flags = _cpu_flags()  # Empty where /proc/cpuinfo is missing (not Linux).
    return bool(probe()) and ("amx_bf16" in flags or not flags)


@functools.cache
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_precision(precision: str, device) -> str:
    """'fp32' or 'bf16' for the config's `precision` ('auto', 'fp32', 'bf16')."""
    if precision != "auto":
        return precision
    on_cuda = device is not None and torch.device(device).type == "cuda"
    return "bf16" if on_cuda or cpu_has_bf16_units() else "fp32"


# ----------------------------------------------------------------- allocator
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
#: Opt-out: RLLIB_MWM_MALLOC=default leaves glibc's settings alone.
ALLOCATOR_ENV = "RLLIB_MWM_MALLOC"


@functools.cache
def tune_allocator() -> str:
    """Makes glibc keep freed memory instead of returning it to the kernel.

    No mmap for large blocks (they come from the heap and are reused), no trimming
    of the heap top, 64 MB of top padding. Peak memory is unchanged (the same
    blocks are reused); memory freed after the peak is not given back. Returns a
    description of what was done.
    """
    if os.environ.get(ALLOCATOR_ENV, "") == "default":
        return f"glibc default ({ALLOCATOR_ENV}=default)"
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return "jemalloc (LD_PRELOAD)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "system default (not glibc)"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = all(
        libc.mallopt(option, value)
        for option, value in (
            (_M_MMAP_MAX, 0),
            (_M_TRIM_THRESHOLD, 2**31 - 1),
            (_M_TOP_PAD, 64 << 20),
        )
    )
    return "glibc, no mmap/trim" if ok else "glibc default (mallopt refused)"
