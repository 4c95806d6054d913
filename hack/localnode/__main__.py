"""``python3 hack/localnode [agent|cleanup] ...``: run as a folder, so put ``hack/`` on the import path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localnode.agent import main

sys.exit(main())
