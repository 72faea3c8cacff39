"""Every row of docs/errors.md's "Bad inputs and what they say" table: each case
makes the bad input and checks that its message is one line matching the table's
text (`…` stands for any text). The cases and the rows must be the same set."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from helpers import ACT_SPACE, OBS_SPACE, tiny_config

from rllib_mwm import MWMConfig, make_env
from rllib_mwm.core.envs.rlbench import rlbench_installed
from rllib_mwm.core.envs.wrappers import EnvSettings, PixelEnv
from rllib_mwm.core.errors import CLIError
from rllib_mwm.core.process import check_gl_backend
from rllib_mwm.rllib.rl_module import MWMTorchRLModule
from rllib_mwm.tools.cli import (
    _fit,
    check_experiment,
    experiment_from_dict,
    load_experiments,
    parse_json,
)
from rllib_mwm.tools.evaluate import evaluate_checkpoint

ERRORS_DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
SECTION = "# Bad inputs and what they say"
CASES = {}


def case(function):
    """Registers a case under its name with dashes (`unknown_task` → `unknown-task`)."""
    CASES[function.__name__.replace("_", "-")] = function
    return function


def message_of(error_type, function, *args, **kwargs) -> str:
    with pytest.raises(error_type) as error:
        function(*args, **kwargs)
    return str(error.value)


def config(**values):
    return MWMConfig().update_from_dict(values)


def validated(**training):
    return MWMConfig().training(**training).validate_mwm()


# ------------------------------------------------------------------- envs
@case
def unknown_suite(tmp_path):
    return message_of(ValueError, make_env, "atari_pong")


@case
def unknown_task(tmp_path):
    return message_of(ValueError, make_env, "metaworld_peg_insert")


@case
def env_config_key(tmp_path):
    return message_of(ValueError, make_env, "dmc_cartpole_swingup", sed=1)


@case
def env_size(tmp_path):
    return message_of(ValueError, make_env, "dmc_cartpole_swingup", size=(0, 64))


@case
def env_action_repeat(tmp_path):
    return message_of(ValueError, make_env, "dmc_cartpole_swingup", action_repeat=0)


@case
def env_camera(tmp_path):
    return message_of(ValueError, make_env, "dmc_cartpole_swingup", camera="top")


@case
def fast_render_outside_metaworld(tmp_path):
    return message_of(ValueError, make_env, "dmc_cartpole_swingup", fast_render=True)


@case
def rlbench_missing(tmp_path):
    if rlbench_installed():
        pytest.skip("RLBench is installed here")
    return message_of(ImportError, make_env, "rlbench_reach_target")


@case
def action_shape(tmp_path):
    env = make_env("dmc_cartpole_swingup", seed=0)
    env.reset()
    try:
        return message_of(ValueError, env.step, np.zeros(3, np.float32))
    finally:
        env.close()


class _BrokenSimulator(PixelEnv):
    def __init__(self):
        super().__init__(EnvSettings(), 1, 10, 0.05)

    def _reset_sim(self, seed):
        raise RuntimeError("no free scene")


@case
def reset_keeps_failing(tmp_path):
    return message_of(RuntimeError, _BrokenSimulator().reset)


@case
def mujoco_gl_unknown(tmp_path):
    return message_of(RuntimeError, check_gl_backend, {"MUJOCO_GL": "opengl"})


@case
def egl_missing(tmp_path):
    return message_of(
        RuntimeError, check_gl_backend, {"MUJOCO_GL": "egl"}, lambda backend: False
    )


@case
def glfw_without_display(tmp_path):
    return message_of(RuntimeError, check_gl_backend, {"MUJOCO_GL": "glfw"})


# ----------------------------------------------------------------- config
@case
def unknown_preset(tmp_path):
    return message_of(ValueError, config, presets=["metaword"])


@case
def unknown_key(tmp_path):
    return message_of(ValueError, config, mask_ration=0.5)


@case
def unknown_nested_key(tmp_path):
    return message_of(ValueError, config, mae={"rewardpred": False})


@case
def key_of_another_method(tmp_path):
    return message_of(ValueError, MWMConfig().training, rollout_fragment_length=10)


@case
def wrong_type(tmp_path):
    return message_of(ValueError, config, mask_ratio="high")


@case
def not_a_dict(tmp_path):
    return message_of(ValueError, config, dataset=16)


@case
def zero_size(tmp_path):
    return message_of(ValueError, validated, dataset={"batch": 0})


@case
def negative_count(tmp_path):
    return message_of(ValueError, validated, prefill=-1)


@case
def out_of_range(tmp_path):
    return message_of(ValueError, validated, mask_ratio=1.0)


@case
def not_a_choice(tmp_path):
    return message_of(ValueError, validated, precision="fp16")


@case
def mae_width_and_heads(tmp_path):
    return message_of(ValueError, validated, mae={"embed_dim": 30})


@case
def mae_decoder_heads(tmp_path):
    return message_of(ValueError, validated, mae={"decoder_num_heads": 3})


@case
def mae_image_grid(tmp_path):
    return message_of(ValueError, validated, mae={"img_size": 60})


@case
def early_conv_patch(tmp_path):
    return message_of(ValueError, validated, mae={"patch_size": 16})


@case
def reward_quirk_without_reward(tmp_path):
    mae = {"reward_pred": False, "reward_quirk": True}
    return message_of(ValueError, validated, mae=mae)


@case
def latent_vit_heads(tmp_path):
    return message_of(ValueError, validated, wm_flat_vit={"num_heads": 3})


@case
def zero_depth(tmp_path):
    return message_of(ValueError, validated, wm_flat_vit={"depth": 0})


@case
def rssm_size(tmp_path):
    return message_of(ValueError, validated, rssm={"stoch": 0})


@case
def head_units(tmp_path):
    return message_of(ValueError, validated, critic={"units": 0})


@case
def actor_std_range(tmp_path):
    return message_of(ValueError, validated, actor={"min_std": 2.0})


@case
def mask_keeps_nothing(tmp_path):
    return message_of(ValueError, validated, mask_ratio=0.999)


@case
def replay_below_one_sequence(tmp_path):
    return message_of(ValueError, validated, replay={"capacity": 10})


@case
def short_horizon(tmp_path):
    return message_of(ValueError, validated, imag_horizon=1)


@case
def zero_train_every(tmp_path):
    return message_of(ValueError, validated, train_every=0)


@case
def zero_train_steps(tmp_path):
    return message_of(ValueError, validated, train_steps=0)


@case
def zero_lambda(tmp_path):
    return message_of(ValueError, validated, lambda_=0.0)


@case
def zero_gamma(tmp_path):
    return message_of(ValueError, validated, gamma=0.0)


@case
def zero_clip(tmp_path):
    return message_of(ValueError, validated, model_opt={"clip": 0.0})


@case
def negative_loss_scale(tmp_path):
    return message_of(ValueError, validated, loss_scales={"kl": -1.0})


@case
def reward_norm_momentum(tmp_path):
    return message_of(ValueError, validated, reward_norm={"momentum": 1.5})


@case
def env_time_limit(tmp_path):
    return message_of(ValueError, make_env, "dmc_cartpole_swingup", time_limit=0)


@case
def replay_below_prefill(tmp_path):
    (note,) = MWMConfig().training(replay={"capacity": 1000}).mwm_warnings()
    return note


@case
def train_every_above_episode(tmp_path):
    config = MWMConfig().environment(env_config={"time_limit": 100})
    (note,) = config.training(train_every=200).mwm_warnings()
    return note


@case
def negative_policy_lag(tmp_path):
    return message_of(ValueError, validated, max_policy_lag=-5)


@case
def gpu_auto_in_python(tmp_path):
    c = MWMConfig().environment("metaworld_reach").learners(num_gpus_per_learner="auto")
    return message_of(ValueError, c.validate)


@case
def evaluation_interval(tmp_path):
    c = MWMConfig().environment("metaworld_reach").evaluation(evaluation_interval=5)
    return message_of(ValueError, c.validate)


# --------------------------------------------------------- model, checkpoint
def module(obs_space=OBS_SPACE, **training):
    return MWMTorchRLModule(
        observation_space=obs_space,
        action_space=ACT_SPACE,
        model_config=tiny_config(**training)._model_config_auto_includes,
    )


@case
def action_pad_below_actions(tmp_path):
    return message_of(ValueError, module, rssm={"action_pad": 2})


@case
def observation_space(tmp_path):
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)  # e.g. CartPole
    return message_of(ValueError, module, space)


@case
def checkpoint_of_another_config(tmp_path):
    wide = module(rssm={"deter": 128, "hidden": 64, "stoch": 8, "discrete": 8})
    return message_of(ValueError, module().set_state, wide.get_state())


def evaluate(path) -> str:
    return message_of(CLIError, evaluate_checkpoint, str(path), verbose=True)


@case
def checkpoint_missing(tmp_path):
    return evaluate(tmp_path / "checkpoint_000003")


@case
def not_a_checkpoint(tmp_path):
    return evaluate(tmp_path)


@case
def checkpoint_damaged(tmp_path):
    (tmp_path / "learner_group" / "learner" / "rl_module").mkdir(parents=True)
    (tmp_path / "class_and_ctor_args.pkl").write_bytes(pickle.dumps([1, 2])[:-3])
    return evaluate(tmp_path)


# -------------------------------------------------------------- command line
@case
def yaml_missing(tmp_path):
    return message_of(CLIError, load_experiments, str(tmp_path / "nope.yaml"))


@case
def yaml_malformed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("mwm:\n  run: MWM\n  config: {presets: [debug}\n")
    return message_of(CLIError, load_experiments, str(path))


@case
def experiment_key(tmp_path):
    body = {"run": "MWM", "stopp": {"agent_steps": 10}}
    return message_of(CLIError, experiment_from_dict, "mwm", body)


@case
def experiment_without_run(tmp_path):
    return message_of(CLIError, experiment_from_dict, "mwm", {"env": "metaworld_reach"})


@case
def unknown_algorithm(tmp_path):
    experiment = experiment_from_dict("mwm", {"run": "MWMM"})
    return message_of(CLIError, check_experiment, experiment)


@case
def config_error_in_yaml(tmp_path):
    body = {"run": "MWM", "env": "metaworld_reach", "config": {"mask_ration": 0.5}}
    return message_of(CLIError, check_experiment, experiment_from_dict("mwm", body))


@case
def config_not_json(tmp_path):
    return message_of(CLIError, parse_json, "{presets: [debug]}", "config")


@case
def resume_with_nothing_to_resume(tmp_path, monkeypatch, capsys):
    from ray import tune

    class Tuner:  # Only what `_fit` calls.
        can_restore = staticmethod(lambda path: False)

        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            return None

    monkeypatch.setattr(tune, "Tuner", Tuner)
    experiment = experiment_from_dict("mwm", {"run": "MWM"})
    experiment.storage_path = str(tmp_path)
    _fit(experiment, resume=True)
    return capsys.readouterr().out.strip()


# ------------------------------------------------------------------ checks
def table_rows() -> dict[str, str]:
    """`case id → message pattern` from the docs/errors.md table (first and last
    cells)."""
    text = ERRORS_DOC.read_text()
    assert SECTION in text, f"docs/errors.md lacks the section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or set(cells[0]) <= {"-"}:
            continue
        if cells[0] == "Case":  # The header.
            continue
        key = cells[0].strip("`")
        assert key not in rows, f"docs/errors.md's table lists {key!r} twice"
        rows[key] = cells[2].strip("`").strip()
    return rows


def test_errors_table_and_cases_agree():
    assert len(CASES) >= 20
    rows = table_rows()
    assert set(rows) == set(CASES), (
        f"only in docs/errors.md: {sorted(set(rows) - set(CASES))}; "
        f"only in tests: {sorted(set(CASES) - set(rows))}"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_its_documented_message(name, tmp_path, request):
    function = CASES[name]
    fixtures = {"tmp_path": tmp_path}
    for extra in ("monkeypatch", "capsys"):
        if extra in function.__code__.co_varnames[: function.__code__.co_argcount]:
            fixtures[extra] = request.getfixturevalue(extra)
    message = function(**fixtures)
    assert message and "\n" not in message, message
    expected = table_rows().get(name)
    assert expected is not None, f"docs/errors.md's table lacks {name!r}"
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    assert re.fullmatch(pattern, message), (
        f"\ndocs/errors.md: {expected}\nactual: {message}"
    )
