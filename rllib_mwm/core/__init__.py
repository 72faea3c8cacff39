"""The math that is MWM, and what it runs on: networks (`nets`), losses, the
optimizer steps (`update`), the replay, the env adapters, precision and process
set-up.

Nothing here imports ray, rllib or tune (a test checks it with Ray made
unimportable): core runs wherever torch and timm do.
"""
