"""``python -m evospikenet.cli``: the ``evospikenet`` command."""

import sys

from evospikenet.cli import main

sys.exit(main())
