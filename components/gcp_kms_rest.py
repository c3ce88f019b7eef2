"""Cloud KMS's REST API (https://cloud.google.com/kms/docs/reference/rest): one call, one place
that picks the session and the endpoint.

Used by the restored-key provider (components/kms_restore.py: get, PATCH, ``:restore``,
``:destroy``) and by the signing path (components/signing.py: ``:asymmetricSign``). Production
calls go to ``cloudkms.googleapis.com`` with Application Default Credentials (google-auth's
``AuthorizedSession``); ``CLOUDKMS_EMULATOR_HOST`` (``host:port``) points them at an emulator over
plain HTTP without credentials, as ``STORAGE_EMULATOR_HOST`` does for Cloud Storage. A session is
made per call and closed after it: the callers run in dynamic providers, which are pickled.
"""

from __future__ import annotations

import os
from typing import Any

ENDPOINT = "https://cloudkms.googleapis.com"
EMULATOR_VARIABLE = "CLOUDKMS_EMULATOR_HOST"
SCOPE = "https://www.googleapis.com/auth/cloudkms"


class CloudKmsRefused(Exception):
    """Cloud KMS answered with an error: its status (e.g. ``NOT_FOUND``) and message."""

    def __init__(self, status: str, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _session() -> tuple[Any, str]:
    """A requests session for Cloud KMS and the base URL to call, as the environment says."""
    emulator = os.environ.get(EMULATOR_VARIABLE)
    if emulator:
        import requests

        return requests.Session(), f"http://{emulator}"
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _project = google.auth.default(scopes=[SCOPE])
    return AuthorizedSession(credentials), ENDPOINT


def call(name: str, method: str, suffix: str = "", body: dict[str, Any] | None = None,
         params: dict[str, str] | None = None) -> dict[str, Any]:
    """``method`` on the resource ``name`` (e.g. a CryptoKeyVersion's name) with ``suffix`` (a custom
    verb such as ``:asymmetricSign``); the JSON answer, or :class:`CloudKmsRefused`."""
    session, base = _session()
    try:
        answer = session.request(method, f"{base}/v1/{name}{suffix}", json=body, params=params, timeout=60)
    finally:
        session.close()
    data = answer.json() if answer.content else {}
    if answer.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise CloudKmsRefused(str(error.get("status", answer.status_code)),
                              str(error.get("message", answer.text[:200])))
    result: dict[str, Any] = data
    return result
