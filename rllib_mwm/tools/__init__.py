"""The tools people drive MWM with: the `rllib` command line, the original MWM
flags, evaluation, cluster runs, console output, `--resume`, the paper table and
plots. They import from `rllib_mwm.core` and `rllib_mwm.rllib`; nothing imports
from here.
"""
