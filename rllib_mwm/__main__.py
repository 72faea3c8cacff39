"""`python -m rllib_mwm ...` is the `rllib` command (see `rllib_mwm.cli`)."""

import sys

from rllib_mwm.cli import main

sys.exit(main())
