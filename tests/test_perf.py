"""Speed plumbing: precision resolution, the allocator setting, bf16 and compiled
updates on the CPU (the code paths a GPU learner uses, exercised where CI runs)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import build_learner, load_script, random_sequences, tiny_config

from rllib_mwm.core import perf


@pytest.mark.parametrize(
    "precision, device, has_units, expected",
    [
        ("auto", "cpu", False, "fp32"),
        ("auto", "cpu", True, "bf16"),
        ("auto", "cuda:0", False, "bf16"),
        ("fp32", "cuda:0", True, "fp32"),
        ("bf16", "cpu", False, "bf16"),
        ("auto", None, False, "fp32"),
    ],
)
def test_precision_auto_is_bf16_only_where_bf16_is_faster(
    monkeypatch, precision, device, has_units, expected
):
    monkeypatch.setattr(perf, "cpu_bf16_choice", lambda: (has_units, "probe"))
    assert perf.resolve_precision(precision, device) == expected
    chosen, why = perf.precision_choice(precision, device)
    assert chosen == expected and why


@pytest.mark.parametrize(
    "amx_tile, flags, speedup, expected, why",
    [
        (True, {"avx512f", "amx_tile", "amx_bf16"}, 1.0, True, "AMX-BF16 tiles"),
        (True, {"avx512f", "amx_tile"}, 1.0, False, "1.00x"),  # AMX without bf16
        (False, {"avx512f", "avx512_bf16"}, 1.0, True, "AVX512-BF16"),
        (False, {"avx2", "fma"}, 1.2, False, "below 1.5x"),
        (False, {"avx2", "fma"}, 2.0, True, "probe ran 2.00x"),
    ],
)
def test_bf16_is_chosen_from_the_cpu_flags_or_the_probe(
    monkeypatch, amx_tile, flags, speedup, expected, why
):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx_tile)
    monkeypatch.setattr(perf, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(perf, "bf16_probe_speedup", lambda: speedup)
    perf.cpu_bf16_choice.cache_clear()
    try:
        faster, reason = perf.cpu_bf16_choice()
        assert faster is expected and why in reason
        assert perf.cpu_has_bf16_units() is expected
    finally:
        perf.cpu_bf16_choice.cache_clear()


def test_bf16_probe_measures_a_positive_rate():
    assert perf.bf16_probe_speedup(size=64, repeats=2) > 0


_RSS_AFTER_FREE = textwrap.dedent(
    """
    import ctypes, os, sys
    import rllib_mwm  # noqa: F401  (tunes the allocator unless opted out)
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    page = os.sysconf("SC_PAGE_SIZE")
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
    size = 256 << 20
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # Fault every page in.
    before = rss()
    libc.free(block)
    print((before - rss()) / size)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("opt_out, returned", [(False, False), (True, True)])
def test_freed_blocks_stay_with_the_process(monkeypatch, opt_out, returned):
    """glibc gives a freed 256 MB block back to the kernel (to be faulted in again
    by the next update); after `import rllib_mwm` it keeps it for reuse."""
    if opt_out:
        monkeypatch.setenv(perf.ALLOCATOR_ENV, "default")
    else:
        monkeypatch.delenv(perf.ALLOCATOR_ENV, raising=False)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_AFTER_FREE], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    fraction_returned = float(out.stdout.split()[-1])
    assert (fraction_returned > 0.9) is returned, fraction_returned


_BREAK_AFTER_FREE = textwrap.dedent(
    """
    import ctypes
    import rllib_mwm  # noqa: F401  (tunes the allocator)
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = libc.sbrk.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.argtypes = [ctypes.c_long]
    block = libc.malloc(5 << 29)  # 2.5 GiB from the heap; untouched, so cheap
    assert block, "malloc failed"
    grown = libc.sbrk(0)
    libc.free(block)
    print(grown - libc.sbrk(0))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_freed_block_over_2_gib_stays_with_the_process(monkeypatch):
    """A paper-size update frees more than 2 GiB at the heap's top at once; a trim
    threshold of 2 GiB (mallopt's largest positive value) gave it back to the
    kernel, and the next update faulted it in again."""
    monkeypatch.delenv(perf.ALLOCATOR_ENV, raising=False)
    out = subprocess.run(
        [sys.executable, "-c", _BREAK_AFTER_FREE], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == 0  # The heap's top did not move down.


def _losses(metrics):
    keys = ("mae/mae_pixel_loss", "world_model/feature_loss", "world_model/kl_loss")
    return np.array([metrics[k] for k in keys if k in metrics])


def test_bf16_autocast_update_on_cpu_tracks_fp32():
    """The bf16 path (autocast; fp32 weights and Adam state) runs on the CPU and
    its losses stay close to fp32's from the same init and batches."""
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        learner = build_learner(tiny_config(precision=precision))
        assert learner.precision == precision
        seqs = random_sequences(2, 8, seed=1)
        mae = learner.update_mae({"obs": seqs["obs"], "rewards": seqs["rewards"]})
        wm = learner.update_world_model(seqs)
        params = learner.mwm_module.rssm.parameters()
        assert all(p.dtype == torch.float32 for p in params)
        optimizer = learner.get_optimizer(optimizer_name="world_model")
        state = next(iter(optimizer.state.values()))
        assert state["exp_avg"].dtype == torch.float32
        results[precision] = np.concatenate([_losses(mae), _losses(wm)])
    assert np.isfinite(results["bf16"]).all()
    np.testing.assert_allclose(results["bf16"], results["fp32"], rtol=0.05)


def test_compiled_transformers_match_eager():
    """`compile: true` compiles the transformer stacks in place (state-dict keys
    unchanged) and computes the same update."""
    results, keys = {}, {}
    for compiled in (False, True):
        torch.manual_seed(0)
        learner = build_learner(tiny_config(compile=compiled))
        keys[compiled] = sorted(learner.mwm_module.state_dict())
        seqs = random_sequences(2, 8, seed=1)
        torch.manual_seed(1)
        metrics = learner.update_mae({"obs": seqs["obs"], "rewards": seqs["rewards"]})
        results[compiled] = _losses(metrics)
    assert keys[True] == keys[False]
    np.testing.assert_allclose(results[True], results[False], rtol=1e-4)


def test_precision_parity_short_form_on_real_metaworld_batches():
    """`scripts/precision_parity.py` in short: debug widths, a few updates."""
    script = load_script("precision_parity")
    result = script.parity(
        updates=6, widths="debug", batch=2, length=8, episodes=2, time_limit=30
    )
    assert result["ok"], result["relative_difference"]
    assert set(result["final"]["bf16"]) == set(script.LOSSES)
