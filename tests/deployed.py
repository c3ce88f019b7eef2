"""Stack outputs as `pulumi up` would leave them had every change been deployed when it was made.

The rotation commands read two records from the stack outputs: the publishers' first-published
time per kid (``documents.<target>.firstPublished``) and the deployment record of every switch
(``deployments``, components/switches.py). Tests that are not about deployment lag use this:
each generation first published at its createdAt (or ``published_at[id]``), each switch deployed
at its recorded time (or ``deployed_at[(id, state)]``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from keyrotation import documents, keys, lifecycle
from keyrotation.commands.outputs import records
from keyrotation.commands.records import Publications, kid_info
from keyrotation.config import ConfigError, StackConfig, load_stack_file
from keyrotation.lifecycle import PUBLISHED_STATES
from keyrotation.times import format_time


def deployed_kid(stack: StackConfig, keyset: Any, generation: Any) -> str:
    """The kid `pulumi up` gives the generation: its template, its external key's thumbprint, or (a
    generated key, which this stand-in has no key for) 43 base64url characters, as an RFC 7638
    thumbprint, derived from the keyset and generation."""
    known = kid_info(stack, keyset, generation).value
    if known is not None:
        return known
    digest = hashlib.sha256(f"{keyset.name}/{generation.id}".encode()).digest()
    thumbprint = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return keys.render_kid(keyset.kid, keyset=keyset.name, generation=generation.id,
                           environment=stack.environment, thumbprint=thumbprint)


def outputs_for(
    stack: StackConfig,
    *,
    published_at: dict[str, datetime] | None = None,
    deployed_at: dict[tuple[str, str], datetime] | None = None,
) -> dict[str, Any]:
    keysets: dict[str, Any] = {}
    for name, ks in stack.keysets.items():
        kids = {g.id: deployed_kid(stack, ks, g) for g in ks.generations}
        listed = {
            kids[g.id]: format_time((published_at or {}).get(g.id, g.created_at))
            for g in ks.generations if g.state in PUBLISHED_STATES
        }
        docs = {
            p.target: {"format": p.format, "target": p.target,
                       "firstPublished": listed if p.format in documents.KID_FORMATS else {}}
            for p in ks.publish
        }
        deployments = {
            g.id: [
                {"state": str(state), "at": format_time((deployed_at or {}).get((g.id, str(state)), at)),
                 "targets": [p.target for p in ks.publish]}
                for state, at in lifecycle.path(g)
            ]
            for g in ks.generations
        }
        keysets[name] = {
            "generations": [{"id": g.id, "kid": kids[g.id], "state": str(g.state),
                             "keyId": key_id(stack, ks, g)}
                            for g in ks.generations],
            "documents": docs,
            "deployments": deployments,
        }
    return {"keysets": keysets}


def key_id(stack: StackConfig, ks, g) -> str:
    """The key id the KmsKeyRecord keeps: an AWS key id (stable per keyset and generation), a Cloud
    KMS version name; keyset/generation for the other backends."""
    if ks.backend == "aws-kms":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stack.environment}/{ks.name}/{g.id}"))
    if ks.backend == "gcp-kms":
        project = ks.gcp.project or stack.other.get("gcp:project")
        number = [x.id for x in ks.generations].index(g.id) + 1
        return (f"projects/{project}/locations/{ks.gcp.location}/keyRings/{ks.gcp.key_ring}"
                f"/cryptoKeys/{ks.name}/cryptoKeyVersions/{number}")
    return f"{ks.name}/{g.id}"


def write_outputs(stack_file: Path, path: Path, **kwargs: Any) -> Path:
    """The outputs for the stack file as it is; an invalid stack file has none deployed (``{}``)."""
    try:
        stack = load_stack_file(stack_file)
    except (ConfigError, OSError, ValueError):
        path.write_text("{\"keysets\": {}}")
        return path
    path.write_text(json.dumps(outputs_for(stack, **kwargs)))
    return path


def deployed(stack: StackConfig, keyset: str, **kwargs: Any) -> Publications:
    """What the commands read from those outputs for ``keyset`` (through keyrotation.outputs)."""
    return records(outputs_for(stack, **kwargs), stack, "stack outputs").get(keyset, Publications())
