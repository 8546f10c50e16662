from __future__ import annotations

import sys

from scaling.cli import main

sys.exit(main())
