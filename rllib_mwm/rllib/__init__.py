"""The RLlib plugin over `rllib_mwm.core`: `MWMConfig`, the `MWM` Algorithm, the
RLModule, the learner, callbacks, checkpoints and the Tune registration.

It imports from `rllib_mwm.core` and Ray, never from `rllib_mwm.tools`.
"""
