"""The chaos suite: faults injected into a running stream, conservation checked afterwards.

Sizes are bounded for CI; `make soak` runs the same scenarios longer (CHAOS_LINES).
"""

from __future__ import annotations

import os

from tests.integration.conftest import (  # noqa: F401  (fixtures shared with the integration suite)
    bundle,
    local_stack,
    settings,
    worker,
)

CHAOS_LINES = int(os.environ.get("CHAOS_LINES", "4000"))
