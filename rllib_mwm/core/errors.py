"""Error types a user sees. Each message is one line naming the problem and the
fix; docs/errors.md ("Bad inputs and what they say") lists them.

`CLIError` is what the command lines (`rllib_mwm.tools.cli`, `rllib_mwm.tools.evaluate`,
`rllib_mwm.tools.train`) print without a traceback. The others come from the env
adapters (`rllib_mwm.core.envs`) and the process set-up (`rllib_mwm.core.process`).
"""


class CLIError(Exception):
    """A user mistake, reported as one line without a traceback."""


class SimulatorError(RuntimeError):
    """A simulator fault found by an adapter (e.g. MuJoCo's unstable-simulation
    warning); like any simulator error it ends the episode, not the run."""


class EnvFaultError(RuntimeError):
    """The simulator keeps failing: every reset attempt (each with a fresh seed)
    raised, or many episodes in a row failed at their first step."""


class RenderingBackendError(RuntimeError):
    """`MUJOCO_GL` names a backend that is unknown or not installed."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, at most `limit` characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
