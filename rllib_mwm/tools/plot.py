"""`rllib_mwm plot`: evaluation success rate (or return) against env frames.

    rllib_mwm plot ~/ray_results/mwm-metaworld_reach [--out curves.png]
        [--reference mwm_paper_metaworld_scores.json] [--metric success|return]

Reads every `result.json` under the given Tune/RLlib result directories (one line
per training iteration; an evaluation ran in that iteration iff
`evaluation/agent_steps` is present) and draws one subplot per task with one curve
per method: the mean over runs (seeds), with a min–max band. Runs evaluated at
different frames are interpolated onto the union of their frames; each point
averages the runs whose range covers it. `--reference` overlays the paper's logs
(a list of {task, seed, method, steps, success_rates}) for the tasks present.
All runs of a task are pooled as seeds of one method: plot the trials of one
search configuration at a time.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = {"success": "success_rate", "return": "episode_return_mean"}
YLABELS = {"success": "success rate", "return": "episode return"}


@dataclass(frozen=True)
class Run:
    """One trial's (or one reference seed's) evaluations."""

    task: str
    method: str
    seed: int | None
    frames: np.ndarray  # (K,) increasing env frames
    values: np.ndarray  # (K,)


@dataclass(frozen=True)
class Curve:
    """Mean and min–max over the runs of one (task, method)."""

    task: str
    method: str
    frames: np.ndarray  # (K,)
    mean: np.ndarray  # (K,)
    low: np.ndarray  # (K,)
    high: np.ndarray  # (K,)
    num_runs: int


def find_result_files(result_dir: str | Path) -> list[Path]:
    """Every `result.json` under `result_dir`; raises if there is none."""
    path = Path(result_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"no such result directory: {path}")
    files = sorted(path.rglob("result.json"))
    if not files:
        raise FileNotFoundError(f"no result.json under {path}")
    return files


def read_run(path: Path, metric: str, method: str) -> Run | None:
    """The evaluations in one `result.json`; None if it has none yet."""
    points, config = {}, None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}, line {number}: not a JSON result") from None
        config = result.get("config", config)
        evaluation = result.get("evaluation", {})
        value = evaluation.get("env_runners", {}).get(METRICS[metric])
        if "agent_steps" in evaluation and value is not None:
            points[evaluation["env_frames"]] = value  # A resumed run may repeat.
    if not points:
        return None
    if config is None:
        config = json.loads((path.parent / "params.json").read_text())
    if "env" not in config:
        raise ValueError(f"{path}: the trial's config has no 'env'")
    frames = np.array(sorted(points), dtype=float)
    values = np.array([points[f] for f in sorted(points)], dtype=float)
    return Run(config["env"], method, config.get("seed"), frames, values)


def read_results(result_dir: str | Path, metric: str, method: str) -> list[Run]:
    """The runs under `result_dir`; raises if none has evaluated yet."""
    files = find_result_files(result_dir)
    runs = [run for path in files if (run := read_run(path, metric, method))]
    if not runs:
        raise ValueError(
            f"no evaluation results in the result.json files under {result_dir}"
        )
    return runs


def read_reference(path: str | Path, tasks: set[str] | None = None) -> list[Run]:
    """The paper's runs (`method (paper)`) of the given tasks (None: all)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such reference file: {path}")
    return [
        Run(
            entry["task"],
            f"{entry['method']} (paper)",
            entry.get("seed"),
            np.asarray(entry["steps"], dtype=float),
            np.asarray(entry["success_rates"], dtype=float),
        )
        for entry in json.loads(path.read_text())
        if tasks is None or entry["task"] in tasks
    ]


def aggregate(runs: list[Run]) -> Curve:
    """Mean and min–max of runs of one (task, method) on the union of frames."""
    grid = np.unique(np.concatenate([run.frames for run in runs]))
    values = np.full((len(runs), len(grid)), np.nan)
    for i, run in enumerate(runs):
        inside = (grid >= run.frames[0]) & (grid <= run.frames[-1])
        values[i, inside] = np.interp(grid[inside], run.frames, run.values)
    first = runs[0]
    return Curve(
        first.task,
        first.method,
        grid,
        np.nanmean(values, axis=0),
        np.nanmin(values, axis=0),
        np.nanmax(values, axis=0),
        len(runs),
    )


def assemble_curves(
    result_dirs: list[str | Path],
    metric: str = "success",
    label: str = "mwm (ours)",
    reference: str | Path | None = None,
) -> list[Curve]:
    """One curve per (task, method), ours first, sorted by task."""
    runs = [run for d in result_dirs for run in read_results(d, metric, label)]
    if reference is not None:
        if metric != "success":
            raise ValueError("--reference holds success rates: use --metric success")
        runs += read_reference(reference, {run.task for run in runs})
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.task, run.method].append(run)
    keys = sorted(groups, key=lambda key: (key[0], key[1] != label, key[1]))
    return [aggregate(groups[key]) for key in keys]


def draw(curves: list[Curve], out: str | Path, ylabel: str) -> None:
    """One subplot per task; the same colour for a method in every subplot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter
    except ImportError as error:
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib"
        ) from error
    tasks = sorted({curve.task for curve in curves})
    methods = list(dict.fromkeys(curve.method for curve in curves))
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharey=True
    )
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    for curve in curves:
        ax = axes.flat[tasks.index(curve.task)]
        color = f"C{methods.index(curve.method)}"
        ax.plot(curve.frames, curve.mean, ".-", color=color, label=curve.method)
        ax.fill_between(curve.frames, curve.low, curve.high, color=color, alpha=0.2)
        ax.set_title(curve.task, fontsize=10)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes.flat[: len(tasks)]:
        ax.set_xlabel("env frames")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    legend = {}  # label -> handle, over all subplots
    for ax in axes.flat[: len(tasks)]:
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.tight_layout()
    fig.legend(
        legend.values(),
        legend.keys(),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(legend), 3),
    )
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rllib_mwm plot",
        description="Evaluation curves (mean over seeds, min-max band) per task.",
    )
    parser.add_argument("result_dirs", nargs="+", help="Tune/RLlib result dirs")
    parser.add_argument("--out", default="curves.png", help="PNG to write")
    parser.add_argument(
        "--reference", help="paper scores JSON (e.g. mwm_paper_metaworld_scores.json)"
    )
    parser.add_argument("--metric", choices=sorted(METRICS), default="success")
    parser.add_argument("--label", default="mwm (ours)", help="our curves' label")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """`rllib_mwm plot <result dirs...> [--out] [--reference] [--metric]`; 0 on
    success, SystemExit with a one-line message on bad input."""
    args = parse_args(argv)
    try:
        curves = assemble_curves(
            args.result_dirs, args.metric, args.label, args.reference
        )
        draw(curves, args.out, YLABELS[args.metric])
    except (OSError, ValueError, ImportError) as error:
        raise SystemExit(f"rllib_mwm plot: error: {error}") from None
    tasks = {curve.task for curve in curves}
    print(f"Wrote {args.out}: {len(curves)} curves, {len(tasks)} tasks.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
