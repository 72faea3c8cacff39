"""Test set-up: headless rendering and the import order rllib_mwm needs."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402

import rllib_mwm  # noqa: E402,F401  (sets MUJOCO_GL before any simulator import)

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _no_results_in_the_home_directory(tmp_path_factory):
    """An Algorithm built outside Tune makes its logdir under Ray's default storage
    path, `~/ray_results`; tests put it in a temporary directory instead."""
    from rllib_mwm.rllib.reporting import redirect_default_results

    redirect_default_results(str(tmp_path_factory.mktemp("ray_results")))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that builds algorithms in this process (4
    logical CPUs: env runners of half a CPU, evaluation runners, two learners).
    Subprocesses start their own: `ray.init` in-process writes no address file."""
    import ray

    rllib_mwm.init_ray(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
