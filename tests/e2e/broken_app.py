"""An application module that fails to import (for ``spane worker`` error tests)."""

from __future__ import annotations

raise RuntimeError("this module is broken on purpose")
