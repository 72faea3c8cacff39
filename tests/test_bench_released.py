"""scripts/bench_released.py's command line (the timing itself needs TensorFlow and
the released code, which this project's environment does not hold)."""

import pytest
from helpers import load_script


def test_bench_released_names_a_missing_checkout(tmp_path, capsys):
    bench = load_script("bench_released")
    with pytest.raises(SystemExit) as error:
        bench.parse_args(["--mwm", str(tmp_path)])
    assert error.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--mwm {tmp_path}: no agent.py and common/ there" in message
    assert "released MWM repository" in message


def test_bench_released_takes_a_checkout(tmp_path):
    bench = load_script("bench_released")
    (tmp_path / "agent.py").write_text("")
    (tmp_path / "common").mkdir()
    args = bench.parse_args(["--mwm", str(tmp_path), "--small", "--repeats", "1"])
    assert args.small and args.repeats == 1 and args.threads == 2
