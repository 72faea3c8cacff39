"""The checks of the networks' frozen size configs: each failure is one line that
names the config key, its value, the constraint and a value that works."""

from __future__ import annotations

import math
from typing import Any


def fail(key: str, value: Any, constraint: str, fix: Any) -> ValueError:
    """`MWMConfig.<key> <value> <constraint>: try <fix>.`"""
    return ValueError(f"MWMConfig.{key} {value!r} {constraint}: try {fix}.")


def at_least(key: str, value: Any, low: int = 1) -> None:
    if not value >= low:
        raise fail(key, value, f"must be >= {low}", low)


def divisible(key: str, value: int, divisors: dict[str, int]) -> None:
    """`value` must be a multiple of every divisor; each is named by its label
    (e.g. `{"mae.num_heads 4": 4, "8 (early conv)": 8}`)."""
    step = math.lcm(*divisors.values())
    if value % step:
        labels = " and by ".join(divisors)
        fix = max(step, round(value / step) * step)
        raise fail(key, value, f"must be divisible by {labels}", fix)


def heads_and_width(prefix: str, width: str, heads: str, cfg: Any) -> None:
    """A transformer of `cfg.<width>` channels with `cfg.<heads>` heads and fixed
    sin-cos position embeddings (4 channels per sin/cos pair of two axes)."""
    at_least(f"{prefix}.{heads}", getattr(cfg, heads))
    at_least(f"{prefix}.{width}", getattr(cfg, width))
    n = getattr(cfg, heads)
    divisible(
        f"{prefix}.{width}",
        getattr(cfg, width),
        {f"{prefix}.{heads} {n}": n, "4 (sin-cos embedding)": 4},
    )
