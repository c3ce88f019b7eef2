"""``python -m keyrotation``: the rotation commands (see keyrotation.cli)."""

import sys

from keyrotation.cli import main

sys.exit(main())
