"""The error type the command lines (`rllib_mwm.cli`, `rllib_mwm.evaluate`,
`rllib_mwm.train`) print as one line, without a traceback."""


class CLIError(Exception):
    """A user mistake, reported as one line without a traceback."""
