"""The README's commands are the ones CI and newcomers run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert "pytest" in ci
    assert f"```bash\n{ci}\n```" in readme


def test_readme_main_command_points_at_an_existing_module():
    """The README's first `rllib train file` command is the main one (the `cpu`
    preset's tuned example); it and every other one name a file that exists."""
    readme = (ROOT / "README.md").read_text()
    files = re.findall(r"rllib train file ([^\s`]+)", readme)
    assert files, "README.md has no `rllib train file` command"
    assert (ROOT / files[0]).is_file(), f"README's main command: no {files[0]}"
    assert files[0] == "tuned_examples/mwm/cpu.yaml", files[0]
    missing = [name for name in files if not (ROOT / name).is_file()]
    assert not missing, missing
    assert "rllib train file tuned_examples/mwm/debug.yaml" in readme
    assert (ROOT / "tuned_examples" / "mwm" / "debug.yaml").exists()


def test_algorithms_built_in_tests_log_into_a_temporary_directory():
    """conftest moves Ray's default logdir (`~/ray_results/<date>…`, where an
    Algorithm built outside Tune writes) into pytest's temporary directory."""
    import tempfile

    from ray.tune import Trainable

    class Probe(Trainable):
        def step(self):
            return {}

    probe = Probe()
    try:
        home_results = Path("~/ray_results").expanduser().resolve()
        logdir = Path(probe.logdir).resolve()
        assert home_results not in logdir.parents
        assert Path(tempfile.gettempdir()).resolve() in logdir.parents
    finally:
        probe.stop()
