"""The HTTP API and web dashboard (the ``api`` extra: ``pip install 'spane-py[api]'``).

``create_app(engine)`` builds the FastAPI application; ``spane api`` serves it.
"""

from spane_py.api.app import create_app
from spane_py.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
