"""Speed plumbing for the learner: precision, the allocator, profiler phases.

- `resolve_precision`: `precision: auto` means bf16 autocast wherever bf16 is the
  faster here: CUDA, CPUs with AMX-BF16 or AVX512-BF16, and any other CPU on which
  a short bf16 matmul probe runs ≥ 1.5× the fp32 rate; fp32 everywhere else.
  `precision_choice` also says why.
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

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import time

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


#: A CPU without bf16 units picks bf16 when the probe runs this much faster.
BF16_PROBE_SPEEDUP = 1.5


def bf16_probe_speedup(size: int = 256, repeats: int = 3) -> float:
    """The rate of a bf16 `size`² matmul over the fp32 one on this CPU (best of
    `repeats` each, after a warm-up): about 0.1 s where bf16 is slow. Its own
    generator: the probe leaves torch's random stream as it was."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, size, size, generator=generator)

    def best(x: torch.Tensor, y: torch.Tensor) -> float:
        x @ y
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a, b) / best(a.bfloat16(), b.bfloat16())


@functools.cache
def cpu_bf16_choice() -> tuple[bool, str]:
    """(bf16 is the faster precision on this CPU, why). The probe runs once per
    process, and only on CPUs without AMX-BF16 or AVX512-BF16."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    flags = _cpu_flags()  # Empty where /proc/cpuinfo is missing (not Linux).
    if amx() and ("amx_bf16" in flags or not flags):
        return True, "AMX-BF16 tiles"
    if "avx512_bf16" in flags:
        return True, "AVX512-BF16"
    speedup = bf16_probe_speedup()
    if speedup >= BF16_PROBE_SPEEDUP:
        return True, f"a bf16 matmul probe ran {speedup:.2f}x the fp32 rate"
    return False, (
        f"no AMX-BF16 or AVX512-BF16, and a bf16 matmul probe ran {speedup:.2f}x "
        f"the fp32 rate (below {BF16_PROBE_SPEEDUP}x)"
    )


def cpu_has_bf16_units() -> bool:
    """True where bf16 matmuls are the faster ones on this CPU (`cpu_bf16_choice`)."""
    return cpu_bf16_choice()[0]


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


def precision_choice(precision: str, device) -> tuple[str, str]:
    """('fp32' or 'bf16', why) for the config's `precision` ('auto', 'fp32',
    'bf16') on `device`."""
    if precision != "auto":
        return precision, f"precision: {precision}"
    if device is not None and torch.device(device).type == "cuda":
        return "bf16", "auto: CUDA"
    faster, why = cpu_bf16_choice()
    return ("bf16" if faster else "fp32"), f"auto: {why}"


def resolve_precision(precision: str, device) -> str:
    """'fp32' or 'bf16' for the config's `precision` ('auto', 'fp32', 'bf16')."""
    return precision_choice(precision, device)[0]


# ----------------------------------------------------------------- allocator
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
#: Opt-out: RLLIB_MWM_MALLOC=default leaves glibc's settings alone.
ALLOCATOR_ENV = "RLLIB_MWM_MALLOC"


@functools.cache
def autocast(precision: str, device):
    """bf16 autocast on `device` for precision 'bf16' (weights and optimizer state
    stay fp32), else nothing."""
    if precision != "bf16":
        return contextlib.nullcontext()
    device_type = torch.device(device or "cpu").type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def tune_allocator() -> str:
    """Makes glibc keep freed memory instead of returning it to the kernel.

    No mmap for large blocks (they come from the heap and are reused), no trimming
    of the heap top at any size (a threshold of -1: a paper-size update frees
    more than 2 GiB, mallopt's largest positive threshold, at the top at once),
    64 MB of top padding. Peak memory is unchanged (the same
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
            (_M_TRIM_THRESHOLD, -1),  # -1: never trim (mallopt(3))
            (_M_TOP_PAD, 64 << 20),
        )
    )
    return "glibc, no mmap/trim" if ok else "glibc default (mallopt refused)"
