"""The API server's settings, read from the environment (configuration at the edges).

- ``SPANE_API_TOKEN``: when set, every ``/api`` route and ``/metrics`` need
  ``Authorization: Bearer <token>``; ``/healthz``, the dashboard's static files and the
  webhooks endpoint (whose triggers carry their own secrets) stay open.
- ``SPANE_API_CORS_ORIGINS``: comma-separated origins allowed to call the API from a
  browser page served elsewhere; empty (the default): CORS is off, only same-origin pages
  (the bundled dashboard) can.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPANE_API_", extra="ignore")

    token: SecretStr | None = None
    cors_origins: str = ""

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def token_value(self) -> str | None:
        """The token, or None when auth is off (an empty variable counts as unset)."""
        if self.token is None or not self.token.get_secret_value():
            return None
        return self.token.get_secret_value()


__all__ = ["ApiSettings"]
