"""`rllib_mwm report`: the MWM paper's Meta-world table from a benchmark's results.

    rllib_mwm report ~/ray_results/mwm-metaworld-benchmark \
        --reference MWM/scores/score.json [--reps 2000]

The paper's scores are the released repository's `scores/score.json`
(github.com/younggyoseo/MWM): a JSON list of runs, each `{"task", "seed",
"method" ("mwm" or "dreamerv2"), "steps" (env frames), "success_rates"}`.

Reads every trial's evaluations as `rllib_mwm plot` does and computes, for our
runs and for the paper's released MWM and DreamerV2 runs, the paper's protocol:

- success at 100K, 250K and 500K env frames: each run's evaluations interpolated
  linearly between the neighbouring evaluations (the released logs evaluate at
  10K, 30K, 50K, ... frames). A run counts at F frames if its next evaluation
  would come after F: the 0.5M-budget runs, whose last evaluation is at 490K,
  count at 500K with that value. Mean over a task's runs, then over tasks;
- at budget: the mean of each run's last 5 evaluations up to its task's budget
  (0.5M, 1M, 2M or 3M frames: the released runs' last evaluation rounded up to
  100K), averaged the same way: the paper's headline (MWM 81.7 %, DreamerV2
  67.9 %). A run that has not reached its budget is unfinished;
- the interquartile mean (IQM) over runs × tasks with a 95 % stratified-
  bootstrap confidence interval, from `rliable`;
- the tasks and seeds that are missing or unfinished.

The paper's columns use the same tasks as ours; the lines below the table give
the paper's own numbers over all its tasks.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rllib_mwm.tools import plot
from rllib_mwm.tools.plot import Run

#: Where users get the paper's scores (`--reference`).
REFERENCE_SOURCE = (
    "scores/score.json of the released MWM code (github.com/younggyoseo/MWM)"
)
FRAMES = (100_000, 250_000, 500_000)
LAST_EVALS = 5
SEEDS = 5  # The paper's runs per task.
OURS = "ours"
PAPER_NAMES = {"mwm (paper)": "paper MWM", "dreamerv2 (paper)": "paper DreamerV2"}


@dataclass(frozen=True)
class Cell:
    """One statistic of one method: mean and IQM [low, high] in [0, 1]."""

    tasks: int
    mean: float
    iqm: float
    low: float
    high: float
    runs_per_task: int  # In the IQM: the fewest any task has.
    left_out: int  # Runs beyond `runs_per_task`, not in the IQM.


# ---------------------------------------------------------------- scores
def next_eval(run: Run) -> float:
    """Where the run's next evaluation would be: last + the usual spacing."""
    spacing = float(np.median(np.diff(run.frames))) if len(run.frames) > 1 else 0.0
    return float(run.frames[-1]) + spacing


def success_at(run: Run, frames: float) -> float | None:
    """Success interpolated at `frames`; None if the run stopped before it."""
    if next_eval(run) <= frames:
        return None
    return float(np.interp(frames, run.frames, run.values))


def success_at_budget(run: Run, budget: float) -> float | None:
    """Mean of the last 5 evaluations up to `budget`; None if unfinished."""
    values = run.values[run.frames <= budget][-LAST_EVALS:]
    if next_eval(run) <= budget or not len(values):
        return None
    return float(values.mean())


def task_budgets(reference: list[Run]) -> dict[str, float]:
    """Each task's budget: its released runs' last evaluation, rounded up to 100K
    frames (the logs stop at 490K, 990K, 1990K, 2990K)."""
    last: dict[str, float] = defaultdict(float)
    for run in reference:
        last[run.task] = max(last[run.task], float(run.frames[-1]))
    return {task: math.ceil(f / 100_000) * 100_000 for task, f in last.items()}


def statistics(budgets: dict[str, float]) -> dict[str, Callable[[Run], float | None]]:
    """The table's rows: name -> a run's score (None: the run doesn't count)."""
    rows = {
        f"{f // 1000}K frames": (lambda run, f=f: success_at(run, f)) for f in FRAMES
    }
    rows["at budget"] = lambda run: success_at_budget(run, budgets[run.task])
    return rows


def scores_by_task(runs: list[Run], score) -> dict[str, list[float]]:
    """task -> the scores of its runs that count, in seed order."""
    by_task: dict[str, list[tuple]] = defaultdict(list)
    for run in runs:
        value = score(run)
        if value is not None:
            by_task[run.task].append((_seed_key(run.seed), value))
    return {task: [v for _, v in sorted(by_task[task])] for task in sorted(by_task)}


def summarize(by_task: dict[str, list[float]], reps: int, seed: int = 0) -> Cell:
    """Mean over tasks of per-task means; IQM and its stratified-bootstrap 95 %
    CI over the runs × tasks matrix (rliable; the first k runs of each task, k
    the fewest any task has)."""
    if not by_task:
        return Cell(0, math.nan, math.nan, math.nan, math.nan, 0, 0)
    from rliable import library, metrics

    mean = float(np.mean([np.mean(values) for values in by_task.values()]))
    k = min(len(values) for values in by_task.values())
    matrix = np.array([values[:k] for values in by_task.values()]).T  # (k, tasks)
    # rliable 1.2 resamples with the global `np.random.choice` (its
    # `random_state` reaches only arch): seed that, then put it back.
    global_state = np.random.get_state()
    np.random.seed(seed)
    try:
        point, interval = library.get_interval_estimates(
            {"x": matrix},
            lambda scores: np.array([metrics.aggregate_iqm(scores)]),
            reps=reps,
        )
    finally:
        np.random.set_state(global_state)
    low, high = interval["x"][:, 0]
    left_out = sum(len(values) - k for values in by_task.values())
    return Cell(len(by_task), mean, float(point["x"][0]), low, high, k, left_out)


# ------------------------------------------------------------------ input
def read_ours(experiment_dir: str | Path) -> tuple[list[Run], list[tuple]]:
    """Our runs with evaluations, and (task, seed, trial dir) of trials without."""
    try:
        files = plot.find_result_files(experiment_dir)
    except FileNotFoundError as error:
        raise ValueError(f"{error}; {_NO_RESULTS_FIX}") from None
    runs, pending = [], []
    for path in files:
        run = plot.read_run(path, "success", OURS)
        if run is not None:
            runs.append(run)
            continue
        config = _trial_config(path)
        if config.get("env"):
            pending.append((config["env"], config.get("seed"), path.parent))
    if not runs:
        raise ValueError(
            f"no MWM evaluation results (evaluation/env_runners/success_rate) in "
            f"the {len(files)} result.json file(s) under {experiment_dir}; "
            f"{_NO_RESULTS_FIX}"
        )
    return runs, pending


_NO_RESULTS_FIX = (
    "pass the directory of a Tune experiment of MWM on Meta-world (e.g. "
    "~/ray_results/mwm-metaworld-benchmark from `rllib train file "
    "tuned_examples/mwm/metaworld_benchmark.yaml`) after its first evaluation"
)


def _trial_config(result_file: Path) -> dict:
    for line in result_file.read_text().splitlines():
        if line.strip():
            return json.loads(line).get("config", {})
    params = result_file.parent / "params.json"
    return json.loads(params.read_text()) if params.is_file() else {}


def find_reference(path: str | Path | None) -> Path:
    """`path` (the paper's scores); None raises naming where to get them."""
    if path is None:
        raise ValueError(
            f"pass --reference PATH: the paper's scores are {REFERENCE_SOURCE}"
        )
    return Path(path).expanduser()


def _seed_key(seed) -> tuple:
    return (seed is None, seed if isinstance(seed, int | float) else str(seed))


# ----------------------------------------------------------------- report
def table(
    ours: list[Run], reference: list[Run], reps: int
) -> tuple[list[str], dict[str, dict[str, Cell]]]:
    """Rows (statistics) × columns (ours, then the paper's methods); each paper
    cell over the tasks where ours counts in that row."""
    budgets = task_budgets(reference)
    ours = [run for run in ours if run.task in budgets]
    methods = paper_methods(reference)
    columns = [OURS] + [PAPER_NAMES.get(m, f"paper {m}") for m in methods]
    cells: dict[str, dict[str, Cell]] = {}
    for name, score in statistics(budgets).items():
        mine = scores_by_task(ours, score)
        cells[name] = {OURS: summarize(mine, reps)}
        for method, column in zip(methods, columns[1:], strict=True):
            runs = [r for r in reference if r.method == method and r.task in mine]
            cells[name][column] = summarize(scores_by_task(runs, score), reps)
    return columns, cells


def paper_methods(reference: list[Run]) -> list[str]:
    """The reference's methods, MWM and DreamerV2 first."""
    order = list(PAPER_NAMES)
    methods = set(run.method for run in reference)
    return sorted(methods, key=lambda m: (order.index(m) if m in order else 2, m))


def paper_means(reference: list[Run]) -> list[str]:
    """The paper's own means over all its tasks, one line per method."""
    budgets = task_budgets(reference)
    lines = []
    for method in paper_methods(reference):
        runs = [run for run in reference if run.method == method]
        means = [
            np.mean([np.mean(v) for v in scores_by_task(runs, score).values()])
            for score in statistics(budgets).values()
        ]
        tasks = len({run.task for run in runs})
        name = PAPER_NAMES.get(method, f"paper {method}")
        values = " / ".join(f"{100 * m:.1f}" for m in means)
        lines.append(f"  {name}, all {tasks} tasks: {values}")
    return lines


def iqm_notes(cells: dict[str, dict[str, Cell]]) -> list[str]:
    """Rows whose IQM leaves runs out (rliable needs as many runs per task)."""
    return [
        f"IQM of ours, {name}: the first {row[OURS].runs_per_task} run(s) of each "
        f"task (the fewest any task has), leaving out {row[OURS].left_out}"
        for name, row in cells.items()
        if row[OURS].left_out
    ]


def coverage(runs: list[Run], pending: list[tuple], budgets: dict) -> list[str]:
    """Tasks and seeds missing, runs unfinished, tasks outside the benchmark."""
    seeds_of: dict[str, dict] = defaultdict(dict)  # task -> seed -> status
    for run in runs:
        budget = budgets.get(run.task)
        if budget is not None and success_at_budget(run, budget) is None:
            last = f"last evaluation at {_frames(run.frames[-1])}"
            seeds_of[run.task][run.seed] = f"{last} of {_frames(budget)} frames"
        else:
            seeds_of[run.task][run.seed] = None
    for task, seed, _ in pending:
        seeds_of[task].setdefault(seed, "no evaluation yet")
    seeds = sorted({s for t in seeds_of.values() for s in t} - {None}, key=_seed_key)
    lines = []
    outside = sorted(task for task in seeds_of if task not in budgets)
    if outside:
        lines.append(f"not in the paper's benchmark (left out): {', '.join(outside)}")
    missing = sorted(task for task in budgets if task not in seeds_of)
    if missing:
        lines.append(
            f"missing tasks ({len(missing)} of {len(budgets)}): {', '.join(missing)}"
        )
    if 0 < len(seeds) < SEEDS:
        lines.append(f"seeds: {len(seeds)} per task here, the paper has {SEEDS}")
    absent = [
        f"{task} seed {', '.join(str(s) for s in seeds if s not in seeds_of[task])}"
        for task in sorted(seeds_of)
        if task in budgets and any(s not in seeds_of[task] for s in seeds)
    ]
    if absent:
        lines.append(f"missing runs: {'; '.join(absent)}")
    unfinished = [
        f"{task} seed {seed} ({status})"
        for task in sorted(seeds_of)
        if task in budgets
        for seed, status in sorted(
            seeds_of[task].items(), key=lambda i: _seed_key(i[0])
        )
        if status
    ]
    if unfinished:
        lines.append(f"unfinished runs: {'; '.join(unfinished)}")
    return lines or ["complete: every task and seed at its budget"]


def build_report(experiment_dir: str | Path, reference_path: Path, reps: int) -> str:
    runs, pending = read_ours(experiment_dir)
    reference = plot.read_reference(reference_path)
    if not reference:
        raise ValueError(f"{reference_path}: no runs in the reference file")
    budgets = task_budgets(reference)
    if not any(run.task in budgets for run in runs):
        raise ValueError(
            f"none of the tasks under {experiment_dir} is in the paper's Meta-world "
            f"benchmark ({reference_path}); the report needs metaworld_<task> runs"
        )
    columns, cells = table(runs, reference, reps)
    tasks = {run.task for run in runs if run.task in budgets}
    lines = [
        f"Meta-world success rate (%) by the MWM paper's protocol: {experiment_dir}",
        f"ours: {len(runs)} runs with evaluations on {len(tasks)} tasks; in each "
        "row the paper's",
        "columns use the tasks where ours counts.",
        "",
        *format_table(columns, cells),
        "",
        "The paper's own means (100K / 250K / 500K frames / at budget):",
        *paper_means(reference),
        "",
        f'"at budget": mean of each run\'s last {LAST_EVALS} evaluations up to its '
        "task's budget (0.5M-3M frames).",
        "IQM: interquartile mean over runs x tasks, 95% stratified-bootstrap CI "
        f"(rliable, {reps} resamples).",
        *iqm_notes(cells),
        *coverage(runs, pending, budgets),
    ]
    return "\n".join(lines)


def format_table(columns: list[str], cells: dict[str, dict[str, Cell]]) -> list[str]:
    width = 30
    head = f"{'':<16}{'tasks':>5}  " + "".join(f"{c:<{width}}" for c in columns)
    sub = f"{'':<23}" + "".join(f"{'mean   IQM [95% CI]':<{width}}" for _ in columns)
    lines = [head.rstrip(), sub.rstrip()]
    for name, row in cells.items():
        text = f"{name:<16}{row[OURS].tasks:>5}  "
        for column in columns:
            text += f"{_cell(row[column]):<{width}}"
        lines.append(text.rstrip())
    return lines


def _cell(cell: Cell) -> str:
    if not cell.tasks:
        return "-"
    pct = [100 * v for v in (cell.mean, cell.iqm, cell.low, cell.high)]
    return "{:5.1f}  {:5.1f} [{:5.1f}, {:5.1f}]".format(*pct)


def _frames(frames: float) -> str:
    return f"{frames / 1e6:g}M" if frames >= 1e6 else f"{frames / 1e3:g}K"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rllib_mwm report",
        description="The MWM paper's Meta-world table from a Tune experiment.",
    )
    parser.add_argument("experiment_dir", help="Tune experiment directory")
    parser.add_argument(
        "--reference",
        help=f"the paper's scores: {REFERENCE_SOURCE}",
    )
    parser.add_argument(
        "--reps", type=int, default=2000, help="bootstrap resamples (default 2000)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Prints the report; SystemExit with a one-line message on bad input."""
    args = parse_args(argv)
    try:
        text = build_report(
            args.experiment_dir, find_reference(args.reference), args.reps
        )
    except (OSError, ValueError, ImportError) as error:
        raise SystemExit(f"rllib_mwm report: error: {error}") from None
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
