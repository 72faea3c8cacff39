"""How close our updates are to the released code's golden ones, as JSON.

    python scripts/reference_margins.py --out bench_results/reference_margins.json \
        [--golden ../shared/reference/golden]

For each `mwm_golden_*.npz` (`rllib_mwm.rllib.golden`): the worst metric error relative
to the released value and the worst variable change error relative to the released
change's norm, with the reference settings; then the same with one setting
changed at a time, which measures what that setting does to an update:

- `torch_adam_eps`: Adam's ε added after the bias correction (torch's own), not
  to the uncorrected √v (Keras'); the first two updates' change errors per network;
- `reinforce_action_grad_off`: REINFORCE with the sampled action as a constant (our
  default, DreamerV2's) instead of the released code's gradient through it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from rllib_mwm.core import update
from rllib_mwm.rllib import golden, learner

ROOT = Path(__file__).resolve().parents[1]


def margins(result: dict) -> dict:
    """The worst metric and variable-change errors of one fixture's run."""
    metrics = golden.metric_errors(result)
    changes = golden.change_errors(result)
    metric = max(metrics, key=lambda r: r["error"] / max(abs(r["released"]), 1e-12))
    moved = [r for r in changes if r["released_change"] > 0]
    change = max(moved, key=lambda r: r["error"] / r["released_change"])
    unmoved = max((r["error"] for r in changes if r["released_change"] == 0), default=0)
    return {
        "worst_metric": {
            **metric,
            "relative": metric["error"] / abs(metric["released"]),
        },
        "worst_change": {
            **change,
            "relative": change["error"] / change["released_change"],
        },
        "largest_change_where_the_released_code_moved_nothing": unmoved,
    }


def per_network(result: dict, updates: int = 2) -> dict[str, dict[str, float]]:
    """Median and max change error relative to the released change, per network,
    over the first `updates` updates."""
    groups: dict[str, list[float]] = {}
    for row in golden.change_errors(result)[: updates * len(result["init"])]:
        if row["released_change"] > 0:
            net = row["variable"].split("/")[0]
            groups.setdefault(net, []).append(row["error"] / row["released_change"])
    return {
        net: {"median": float(np.median(v)), "max": float(np.max(v))}
        for net, v in groups.items()
    }


def actor_gradients(path: Path, action_grad: bool) -> list[torch.Tensor]:
    """The actor's gradient (flat) at each of the fixture's three actor updates."""
    grads = []
    step = learner.MWMTorchLearner._step

    def recording(self, name, loss, lr_scale=1.0):
        if name == "actor":
            opt = self.get_optimizer("default_policy", name)
            params = [self._params[ref] for ref in self._optimizer_parameters[opt]]
            found = torch.autograd.grad(loss, params, retain_graph=True)
            grads.append(torch.cat([g.flatten() for g in found]))
        return step(self, name, loss, lr_scale)

    learner.MWMTorchLearner._step = recording
    try:
        torch.manual_seed(0)
        golden.run_fixture(path, reinforce_action_grad=action_grad)
    finally:
        learner.MWMTorchLearner._step = step
    return grads


def reinforce_effect(path: Path) -> list[dict[str, float]]:
    released, ours = actor_gradients(path, True), actor_gradients(path, False)
    return [
        {
            "cosine": float(a @ b / (a.norm() * b.norm())),
            "norm_released": float(a.norm()),
            "norm_ours": float(b.norm()),
        }
        for a, b in zip(released, ours, strict=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results/reference_margins.json")
    parser.add_argument(
        "--golden",
        default=os.environ.get(
            "MWM_GOLDEN_DIR", str(ROOT.parent / "shared" / "reference" / "golden")
        ),
    )
    args = parser.parse_args()
    fixtures = sorted(Path(args.golden).glob("mwm_golden_*.npz"))
    if not fixtures:
        print(f"no mwm_golden_*.npz in {args.golden}", file=sys.stderr)
        return 1
    report = {"command": " ".join(["python", *sys.argv]), "fixtures": {}}
    for path in fixtures:
        torch.manual_seed(0)
        entry = {"reference_settings": margins(golden.run_fixture(path))}
        keras_eps = update.keras_adam_eps
        update.keras_adam_eps = lambda eps, step, beta2=0.999: eps
        try:
            torch.manual_seed(0)
            entry["torch_adam_eps"] = per_network(golden.run_fixture(path))
        finally:
            update.keras_adam_eps = keras_eps
        if golden.fixture_config(golden.load_meta(path)).actor_grad == "reinforce":
            entry["reinforce_action_grad_off"] = reinforce_effect(path)
        report["fixtures"][path.stem] = entry
        print(path.stem, json.dumps(entry["reference_settings"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
