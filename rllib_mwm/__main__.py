"""`python -m rllib_mwm ...` is the `rllib` command (see `rllib_mwm.tools.cli`)."""

import sys

from rllib_mwm.tools.cli import main

sys.exit(main())
