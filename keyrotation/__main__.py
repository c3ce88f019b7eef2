"""``python -m keyrotation``: the rotation commands (see keyrotation.commands.cli)."""

import sys

from keyrotation.commands.cli import main

sys.exit(main())
