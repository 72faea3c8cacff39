"""Update speed of the released MWM code (TensorFlow), timed the way
`scripts/bench_updates.py` times ours, for a side-by-side comparison on one machine.

    python bench_released.py --mwm PATH/TO/MWM/mwm --out bench_results/released.json \
        [--threads 2] [--repeats 3] [--small]

It runs in its own environment, not this project's: the released code needs
TensorFlow 2.x and TensorFlow Probability. What it was timed with:

    python3.11 -m venv tfvenv
    tfvenv/bin/pip install tensorflow-cpu==2.15.1 tensorflow-probability==0.23.0 \
        'numpy<2' 'ruamel.yaml<0.18' gym==0.26.2 albumentations cloudpickle
    tfvenv/bin/pip install --no-deps --ignore-requires-python tfimm==0.2.14

`--mwm` is the `mwm/` folder of a checkout of the released repository
(younggyoseo/MWM), used as it is. Its `train.py` is followed: configs.yaml's
`defaults` updated by `metaworld`, then `--precision 32`; graph mode (its
`tf.function`s, `jit: True`), no XLA; `train_mae = agent.train_mae` and
`train = common.CarryOverState(agent.train)`. Batches are synthetic, shaped and
typed as a Meta-world replay batch (world model B×T = 50×50, MAE 32×32 frames,
64×64×3 frames, 4-dim actions). Each update: warm-up calls (one for the MAE; two
for `train`, which the carried state traces a second time), then `--repeats`
timed calls, each ending when its metrics are on the host. Prints and writes one
JSON object: seconds per call, their median, the warm-ups, the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import sys
import time
import warnings

#: Meta-world's proprioceptive state and action sizes.
_STATE_DIM, _ACTION_DIM = 39, 4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mwm", required=True, help="the released code's mwm/ folder")
    parser.add_argument("--out", default="bench_results/released.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--small", action="store_true", help="world model 4×8, MAE 4×4 (smoke test)"
    )
    args = parser.parse_args(argv)
    mwm = pathlib.Path(args.mwm)
    if not (mwm / "agent.py").is_file() or not (mwm / "common").is_dir():
        parser.error(
            f"--mwm {mwm}: no agent.py and common/ there; pass the mwm/ folder of a "
            "checkout of the released MWM repository"
        )
    return args


def load_released(mwm: pathlib.Path, tf):
    """(agent module, common module, configs) of the released code at `mwm`."""
    # Written for TF 2.6: TF 2.15 has `mixed_precision` where it had
    # `mixed_precision.experimental`; the released code only reads its policy.
    sys.modules.setdefault(
        "tensorflow.keras.mixed_precision.experimental", tf.keras.mixed_precision
    )
    sys.path[:0] = [str(mwm), str(mwm.parent)]
    import agent
    import common
    import ruamel.yaml as yaml

    return agent, common, yaml.safe_load((mwm / "configs.yaml").read_text())


def make_batch(rng, batch: int, length: int, size: tuple[int, int], tf) -> dict:
    import numpy as np

    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    arrays = {
        "image": rng.integers(0, 256, (batch, length, *size, 3), dtype=np.uint8),
        "reward": rng.random((batch, length), dtype=np.float32),
        "is_first": is_first,
        "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
        "state": rng.standard_normal((batch, length, _STATE_DIM)).astype(np.float32),
        "success": np.zeros((batch, length), np.float32),
        "action": rng.uniform(-1, 1, (batch, length, _ACTION_DIM)).astype(np.float32),
    }
    return {key: tf.constant(value) for key, value in arrays.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.pop("TF_XLA_FLAGS", None)  # No XLA auto-clustering.
    warnings.filterwarnings("ignore")
    import gym
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    agent, common, configs = load_released(pathlib.Path(args.mwm).resolve(), tf)
    config = common.Config(configs["defaults"]).update(configs["metaworld"])
    config = common.Flags(config).parse(["--precision", "32"])
    tf.config.experimental_run_functions_eagerly(not config.jit)
    shapes = {
        "train": (config.dataset.batch, config.dataset.length),
        "train_mae": (config.mae_dataset.batch, config.mae_dataset.length),
    }
    if args.small:
        shapes = {"train": (4, 8), "train_mae": (4, 4)}
    size = tuple(config.render_size)
    box = gym.spaces.Box
    obs_space = {
        "image": box(0, 255, (*size, 3), dtype=np.uint8),
        "reward": box(-np.inf, np.inf, (), dtype=np.float32),
        "state": box(-np.inf, np.inf, (_STATE_DIM,), dtype=np.float32),
        **{
            key: box(0, 1, (), dtype=bool)
            for key in ("is_first", "is_last", "is_terminal", "success")
        },
    }
    act_space = {"action": box(-1, 1, (_ACTION_DIM,), dtype=np.float32)}
    agnt = agent.Agent(config, obs_space, act_space, common.Counter(0))
    calls = {"train_mae": agnt.train_mae, "train": common.CarryOverState(agnt.train)}
    warmups = {"train_mae": 1, "train": 2}
    rng = np.random.default_rng(0)

    def timed(name: str) -> float:
        batch = make_batch(rng, *shapes[name], size, tf)
        start = time.perf_counter()
        metrics = calls[name](batch)
        tf.nest.map_structure(lambda x: x.numpy(), metrics)
        return time.perf_counter() - start

    result = {"tf": tf.__version__, "threads": args.threads, "precision": 32}
    for name in calls:
        warm = [timed(name) for _ in range(warmups[name])]
        times = [timed(name) for _ in range(args.repeats)]
        result[name] = {
            "batch": shapes[name],
            "warmup_s": warm,
            "times_s": times,
            "median_s": statistics.median(times),
        }
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
