"""The released MWM code's names, mapped to ours.

- `translate_config`: its `configs.yaml` keys → an `MWMConfig` dict (used by the
  original-flags command line, `python -m rllib_mwm.tools.train`, and by the parity test
  against the released code's golden updates).
- `RELEASED_SWITCHES`: the settings that make our update the released code's
  (README "Differences from the released code").
- `WEIGHT_TABLE`: its variable names (Keras layer paths) → our parameter names, with
  the layout change each needs; `load_released_weights` / `released_arrays` apply it
  both ways and fail on any variable of either side that no row covers.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import torch

#: Switches that reproduce the released code where we differ on purpose.
RELEASED_SWITCHES: dict[str, Any] = {
    "mae": {"reward_quirk": True},  # Reward layer on the last patch's pixels.
    "rssm": {"action_pad": 50},  # Actions zero-padded to 50 dims.
    "reinforce_action_grad": True,  # REINFORCE's gradient through the action.
}

#: Original top-level keys → our key, and a translation of the value.
RENAMED = {
    "discount": ("gamma", None),
    "discount_lambda": ("lambda", None),
    "precision": ("precision", {16: "bf16", 32: "fp32"}),
    "task": ("env", None),
}
#: Original keys that are env settings (`env_config`).
ENV_KEYS = {
    "action_repeat": "action_repeat",
    "time_limit": "time_limit",
    "render_size": "size",
    "camera": "camera",
}
#: Original keys of the run, not of the update: the command line reads `logdir` and
#: `steps` itself; the others only change logging or process layout.
RUN_KEYS = ("logdir", "steps", "envs_parallel", "jit")
#: Original settings we implement for one value only: key → (the value, why).
FIXED = {
    "expl_until": (0, "exploration noise is not implemented"),
    "expl_noise": (0.0, "exploration noise is not implemented"),
    "eval_noise": (0.0, "evaluation noise is not implemented"),
    "dmc_camera": (-1, "set camera instead"),
    "slow_target": (True, "the slow critic is always used"),
    "slow_target_fraction": (1, "the slow critic is a hard copy"),
    "slow_baseline": (True, "the REINFORCE baseline is the slow critic"),
    "rssm.action_free": (False, "action-free pretraining is not implemented"),
    "rssm.act": ("elu", "the RSSM uses ELU"),
    "rssm.norm": ("none", "the RSSM's dense layers have no norm"),
    "reward_norm.scale": (1.0, "StreamNorm scales by 1"),
}
#: Original keys with no effect in the configuration they come with.
UNUSED = (
    "actor_grad_mix",  # Only for actor_grad 'both'.
    "rssm.std_act",  # Continuous latents only.
    "rssm.min_std",
    "replay.maxlen",  # Windows are dataset.length long.
    "loss_scales.proprio",  # No proprioceptive decoder.
    "wm_flat_vit.img_size",  # The MAE's grid, patches and width (checked below).
    "wm_flat_vit.patch_size",
    "wm_flat_vit.in_chans",
    "mae_opt.wd_pattern",
)
#: Counts the released config may write as floats (`1e4`).
COUNTS = (
    "prefill",
    "mae_pretrain",
    "pretrain",
    "train_every",
    "train_mae_every",
    "train_steps",
    "train_mae_steps",
    "eval_every",
    "eval_eps",
    "log_every",
    "replay.capacity",
    "replay.minlen",
)
MLP_HEADS = {
    "reward_head": "symlog",
    "discount_head": "binary",
    "actor": ("auto", "trunc_normal"),
    "critic": "mse",
}


def _error(key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"released-config key {key} = {value!r} is not supported: {why}")


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """`mae.reward_pred` → config["mae"]["reward_pred"] (nested dicts merge)."""
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--{dotted}: {part!r} is not a nested config")
    node[leaf] = value


def translate_config(released: dict[str, Any]) -> dict[str, Any]:
    """The released code's config (nested, whole or in part) as an `MWMConfig`
    dict. Keys it does not know pass through unchanged, so `MWMConfig` rejects the
    misspelled ones with its own message; settings we cannot reproduce raise."""
    ours: dict[str, Any] = {}
    env_config: dict[str, Any] = {}
    for key, value in _flatten(released).items():
        top, _, sub = key.partition(".")
        if key in RUN_KEYS or key.startswith("log_keys_") or key in UNUSED:
            continue
        if key in FIXED:
            expected, why = FIXED[key]
            if value != expected:
                raise _error(key, value, why)
        elif key in ENV_KEYS:
            env_config[ENV_KEYS[key]] = value
        elif key in RENAMED:
            name, table = RENAMED[key]
            ours[name] = table.get(value, value) if table else value
        elif top == "envs":  # `envs: 1` (configs.yaml) or `--envs.amount 1`.
            ours["num_envs_per_env_runner"] = value
        elif top in MLP_HEADS and sub in ("layers", "act", "norm", "dist"):
            _translate_head(ours, top, sub, value)
        elif top.endswith("_opt") and sub in ("opt", "wd_pattern"):
            expected = "adam" if sub == "opt" else "kernel"
            if value != expected:
                raise _error(key, value, f"the optimizers are Adam with {expected!r}")
        elif key in COUNTS and isinstance(value, float) and value.is_integer():
            set_dotted(ours, key, int(value))
        else:
            set_dotted(ours, key, value)
    _check_latent_vit(released)
    if env_config:
        ours["env_config"] = env_config
    return ours


def _translate_head(ours: dict, head: str, sub: str, value: Any) -> None:
    key = f"{head}.{sub}"
    if sub == "layers":
        widths = list(value) if isinstance(value, (list, tuple)) else None
        if not widths or len(set(widths)) != 1:
            raise _error(key, value, "the hidden layers must have one width")
        set_dotted(ours, f"{head}.layers", len(widths))
        set_dotted(ours, f"{head}.units", int(widths[0]))
        return
    expected = {"act": "elu", "norm": "none", "dist": MLP_HEADS[head]}[sub]
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if value not in allowed:
        raise _error(key, value, f"this head uses {allowed[0]!r}")


def _check_latent_vit(released: dict[str, Any]) -> None:
    """The latent ViTs' image is the MAE's token grid: one token per patch, the
    MAE's width per token (checked where the released config gives both sides)."""
    vit, mae = released.get("wm_flat_vit", {}), released.get("mae", {})
    if "patch_size" in vit and vit["patch_size"] != 1:
        raise _error("wm_flat_vit.patch_size", vit["patch_size"], "tokens are patches")
    if "in_chans" in vit and "embed_dim" in mae and vit["in_chans"] != mae["embed_dim"]:
        raise _error("wm_flat_vit.in_chans", vit["in_chans"], "it is mae.embed_dim")
    if "img_size" in vit and {"img_size", "patch_size"} <= set(mae):
        grid = mae["img_size"] // mae["patch_size"]
        if vit["img_size"] != grid:
            raise _error(
                "wm_flat_vit.img_size", vit["img_size"], f"the MAE grid is {grid}"
            )


def with_released_switches(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with `RELEASED_SWITCHES` merged in (nested dicts key by key)."""
    merged = copy.deepcopy(config)
    for key, value in RELEASED_SWITCHES.items():
        if isinstance(value, dict):
            value = {**merged.get(key, {}), **value}
        merged[key] = value
    return merged


# ------------------------------------------------------------------ weights
#: Released variable (regex over its Keras path) → our parameter (template), and
#: the layout: `dense` [in, out] → (out, in); `conv` [h, w, in, out] → (out, in,
#: h, w); `copy` the same array; `mean_rows` / `std_rows` the first / second half
#: of the rows of our actor's one output layer (the released actor has two);
#: `state` a learner statistic rather than a parameter.
_BLOCK = r"vit_(?:en|de)coder_block_(\d+)"
_LINEAR = r"/(attn/qkv|attn/proj|mlp/fc1|mlp/fc2)"
_STEM = r"mae_encoder.stem.convs.\1"
_RSSM = r"rssm/(img_in|img_out|img_dist|obs_out|obs_dist)"
_TRANSFORMER = (
    (_BLOCK + r"/norm(\d)/gamma", r"transformer.blocks.\1.norm\2.weight", "copy"),
    (_BLOCK + r"/norm(\d)/beta", r"transformer.blocks.\1.norm\2.bias", "copy"),
    (_BLOCK + _LINEAR + "/kernel", "{block}.weight", "dense"),
    (_BLOCK + _LINEAR + "/bias", "{block}.bias", "copy"),
    (r"vit_(?:en|de)coder_norm/gamma", "transformer.norm.weight", "copy"),
    (r"vit_(?:en|de)coder_norm/beta", "transformer.norm.bias", "copy"),
)
_MLP = (
    (r"dense(\d+)/kernel", "mlp.hidden.{2i}.weight", "dense"),
    (r"dense(\d+)/bias", "mlp.hidden.{2i}.bias", "copy"),
    (r"out/out/kernel", "mlp.out.weight", "dense"),
    (r"out/out/bias", "mlp.out.bias", "copy"),
)
WEIGHT_TABLE: tuple[tuple[str, str, str], ...] = (
    (r"mae_encoder/early_conv_(\d)/kernel", _STEM + ".weight", "conv"),
    (r"mae_encoder/early_conv_(\d)/bias", _STEM + ".bias", "copy"),
    ("mae_encoder/early_conv_proj/kernel", "mae_encoder.stem.proj.weight", "conv"),
    ("mae_encoder/early_conv_proj/bias", "mae_encoder.stem.proj.bias", "copy"),
    ("mae_encoder/patch_embed/kernel", "mae_encoder.stem.proj.weight", "conv"),
    ("mae_encoder/patch_embed/bias", "mae_encoder.stem.proj.bias", "copy"),
    ("mae_encoder/cls_token/cls_token", "mae_encoder.cls_token", "copy"),
    *((f"mae_encoder/{a}", f"mae_encoder.{b}", c) for a, b, c in _TRANSFORMER),
    ("mae_decoder/decoder_embed/kernel", "mae_decoder.embed.weight", "dense"),
    ("mae_decoder/decoder_embed/bias", "mae_decoder.embed.bias", "copy"),
    ("mae_decoder/mask_token/mask_token", "mae_decoder.mask_token", "copy"),
    *((f"mae_decoder/{a}", f"mae_decoder.{b}", c) for a, b, c in _TRANSFORMER),
    ("mae_decoder/vit_decoder_pred/kernel", "mae_decoder.pixel_head.weight", "dense"),
    ("mae_decoder/vit_decoder_pred/bias", "mae_decoder.pixel_head.bias", "copy"),
    ("mae_decoder/vit_reward_pred/kernel", "mae_decoder.reward_head.weight", "dense"),
    ("mae_decoder/vit_reward_pred/bias", "mae_decoder.reward_head.bias", "copy"),
    ("wm_vit_encoder/encoder_embed/kernel", "latent_encoder.embed.weight", "dense"),
    ("wm_vit_encoder/encoder_embed/bias", "latent_encoder.embed.bias", "copy"),
    *((f"wm_vit_encoder/{a}", f"latent_encoder.{b}", c) for a, b, c in _TRANSFORMER),
    ("wm_vit_decoder/decoder_embed/kernel", "latent_decoder.embed.weight", "dense"),
    ("wm_vit_decoder/decoder_embed/bias", "latent_decoder.embed.bias", "copy"),
    ("wm_vit_decoder/mask_token/mask_token", "latent_decoder.mask_token", "copy"),
    *((f"wm_vit_decoder/{a}", f"latent_decoder.{b}", c) for a, b, c in _TRANSFORMER),
    ("wm_vit_decoder/vit_decoder_pred/kernel", "latent_decoder.head.weight", "dense"),
    ("wm_vit_decoder/vit_decoder_pred/bias", "latent_decoder.head.bias", "copy"),
    (_RSSM + "/kernel", r"rssm.\1.weight", "dense"),
    (_RSSM + "/bias", r"rssm.\1.bias", "copy"),
    ("rssm/gru_cell/dense/kernel", "rssm.cell.linear.weight", "dense"),
    ("rssm/gru_cell/dense/bias", "rssm.cell.linear.bias", "copy"),
    ("rssm/gru_cell/norm_layer/scale", "rssm.cell.norm.weight", "copy"),
    ("rssm/gru_cell/norm_layer/offset", "rssm.cell.norm.bias", "copy"),
    *((f"heads/reward/{a}", f"reward_head.{b}", c) for a, b, c in _MLP),
    *((f"heads/discount/{a}", f"discount_head.{b}", c) for a, b, c in _MLP),
    *((f"actor/{a}", f"actor.{b}", c) for a, b, c in _MLP[:2]),
    ("actor/out/out/kernel", "actor.mlp.out.weight", "mean_rows"),
    ("actor/out/out/bias", "actor.mlp.out.bias", "mean_rows"),
    ("actor/out/std/kernel", "actor.mlp.out.weight", "std_rows"),
    ("actor/out/std/bias", "actor.mlp.out.bias", "std_rows"),
    *((f"critic/{a}", f"critic.{b}", c) for a, b, c in _MLP),
    *((f"slow_critic/{a}", f"slow_critic.{b}", c) for a, b, c in _MLP),
    ("reward_norm/Variable", "reward_norm", "state"),
)


def resolve(released_name: str) -> tuple[str, str]:
    """(our parameter name, layout) of a released variable; raises if no row of
    `WEIGHT_TABLE` covers it."""
    for pattern, template, layout in WEIGHT_TABLE:
        match = re.fullmatch(pattern, released_name)
        if not match:
            continue
        ours = match.expand(template.replace("{block}", r"transformer.blocks.\1.\2"))
        if "{2i}" in ours:
            ours = ours.replace("{2i}", str(2 * int(match.group(1))))
        return ours.replace("/", "."), layout
    raise KeyError(f"no WEIGHT_TABLE row maps the released variable {released_name!r}")


def to_ours(array: np.ndarray, layout: str) -> torch.Tensor:
    """A released array in our layout (the actor's halves: the half alone)."""
    tensor = torch.as_tensor(np.asarray(array))
    if layout in ("dense", "mean_rows", "std_rows") and tensor.dim() == 2:
        return tensor.T.contiguous()
    if layout == "conv":
        return tensor.permute(3, 2, 0, 1).contiguous()
    return tensor


def to_released(tensor: torch.Tensor, layout: str) -> np.ndarray:
    """The inverse of `to_ours`."""
    if layout in ("dense", "mean_rows", "std_rows") and tensor.dim() == 2:
        tensor = tensor.T
    elif layout == "conv":
        tensor = tensor.permute(2, 3, 1, 0)
    return tensor.cpu().numpy().copy()


def _rows(param: torch.Tensor, layout: str) -> torch.Tensor:
    """The part of `param` a released variable of `layout` covers."""
    if layout not in ("mean_rows", "std_rows"):
        return param
    half = param.shape[0] // 2
    return param[:half] if layout == "mean_rows" else param[half:]


def load_released_weights(
    module: torch.nn.Module, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Copies released variables (name → array) into `module`'s parameters; returns
    the `state` rows (learner statistics) for the caller. Raises on a released
    variable no row maps, on a shape mismatch, and on any parameter of `module`
    left without a released variable."""
    params = dict(module.named_parameters())
    covered: dict[str, set[str]] = {name: set() for name in params}
    state = {}
    for name, array in arrays.items():
        ours, layout = resolve(name)
        if layout == "state":
            state[ours] = np.asarray(array)
            continue
        if ours not in params:
            raise KeyError(f"released {name!r} maps to {ours!r}, which we do not have")
        target = _rows(params[ours].data, layout)
        value = to_ours(array, layout).to(target.dtype)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"released {name!r} {tuple(value.shape)} does not fit {ours!r} "
                f"{tuple(target.shape)}"
            )
        target.copy_(value)
        covered[ours].add(layout)
    halves = {"mean_rows", "std_rows"}
    missing = [n for n, got in covered.items() if not (got - halves or got == halves)]
    if missing:
        raise KeyError(f"no released variable sets {', '.join(sorted(missing))}")
    return state


def released_arrays(module: torch.nn.Module, names: list[str]) -> dict[str, np.ndarray]:
    """Our parameters in the released layout, under the released `names`."""
    params = dict(module.named_parameters())
    arrays = {}
    for name in names:
        ours, layout = resolve(name)
        if layout == "state":
            continue
        arrays[name] = to_released(_rows(params[ours].detach(), layout), layout)
    return arrays
