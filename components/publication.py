"""Publishes one document to one target: a Pulumi dynamic resource.

Writes are atomic per object and happen only when the content changed. The state records, per
key id, when it was first published: the policy pack and the rotation commands use it to tell
whether a generation has been visible to verifiers for the publish lead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    Resource,
    UpdateResult,
)

from components.pin import PinConfigured
from keyrotation.errors import KeyRotationError
from keyrotation.names import DEBUG_VARIABLE, NOW_VARIABLE, PUBLICATION
from keyrotation.times import format_time, utc_now

"""Set to 1 to keep the cloud SDK's own traceback under a publisher error."""


class PublishError(KeyRotationError):
    """One line naming the target, the operation and the cause: what the engine shows under the URN."""


# The engine prints the exception as "<module>.<name>: message"; keep that line short.
PublishError.__module__ = "builtins"


def _now() -> str:
    from keyrotation import times

    pinned = os.environ.get(NOW_VARIABLE)
    if pinned is None:
        return format_time(utc_now())
    try:
        return format_time(times.parse(pinned))
    except times.TimeError as error:
        raise PublishError(f"${NOW_VARIABLE}={times.shown(pinned)}: {error}") from None


def _sha256(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def _cause(error: BaseException) -> str:
    """The provider's own words for a failure: an error code and message, without a traceback."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):  # botocore ClientError
        detail = response["Error"]
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        http = f" (HTTP {status})" if status else ""
        return f"{detail.get('Code', 'error')}{http}: {detail.get('Message', '')}"
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if code is not None and isinstance(message, str):  # google.api_core exceptions
        return f"HTTP {code}: {message.splitlines()[0] if message else type(error).__name__}"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}{f' ({error.filename})' if error.filename else ''}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}{': ' + text[0][:300] if text else ''}"


@contextlib.contextmanager
def _operation(target: str, operation: str) -> Iterator[None]:
    """Turn any failure of ``operation`` on ``target`` into one PublishError line."""
    from keyrotation.targets import TargetError

    try:
        yield
    except PublishError:
        raise
    except TargetError as error:
        raise PublishError(f"{target}: {operation} refused: {error}") from None
    except Exception as error:
        message = f"{target}: {operation} failed: {_cause(error)}"
        if os.environ.get(DEBUG_VARIABLE):
            raise PublishError(message) from error
        raise PublishError(message) from None


def _shortened(error: PublishError) -> PublishError:
    return PublishError(str(error))


SECRET_INPUTS = ("signing_keys",)
"""Inputs never copied to the outputs: the software signers' private keys (a Pulumi secret input)."""
SIGNED_BY = ("content", "envelope", "signers")
"""What a signed document's envelope depends on: while they are unchanged, it is not signed again."""


class PublicationProvider(PinConfigured):
    # Each entry point re-raises a PublishError from its own frame: the SDK's dynamic provider
    # server shows `traceback.format_exc()` under the URN, so the fewer frames, the shorter it is.
    def create(self, props: dict[str, Any]) -> CreateResult:
        try:
            outs = self._publish(props, previous_sha=None, first_published={}, pin=self._pin)
        except PublishError as error:
            raise _shortened(error) from (error if os.environ.get(DEBUG_VARIABLE) else None)
        return CreateResult(props["target"], outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["target"] if olds.get("target") != news.get("target") else []
        changed = replaces or [
            p for p in ("content", "kids", "cache_control", "content_type", "envelope", "signers")
            if olds.get(p) != news.get(p)
        ]
        if not changed and self._leftovers(news):
            changed = ["leftover temporary files"]  # a killed write's debris: the update removes it
        return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=False)

    @staticmethod
    def _leftovers(props: dict[str, Any]) -> bool:
        from components.targets import FileTarget, open_target

        try:
            target = open_target(props["target"], props.get("publish_root"))
            return isinstance(target, FileTarget) and bool(target.leftovers())
        except Exception:  # a diff only looks; the update reports what is wrong
            return False

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        previous = olds.get("sha256") if olds.get("cache_control") == news.get("cache_control") else None
        try:
            # The envelope as signed before, while what it signs is unchanged (an ECDSA signature
            # differs every time: signing again would rewrite an unchanged document).
            unchanged = all(olds.get(p) == news.get(p) for p in SIGNED_BY)
            signed = olds.get("signed_content") if unchanged else None
            return UpdateResult(self._publish(news, previous, olds.get("first_published") or {},
                                              pin=self._pin, signed=signed))
        except PublishError as error:
            raise _shortened(error) from (error if os.environ.get(DEBUG_VARIABLE) else None)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        try:
            self._delete(props)
        except PublishError as error:
            raise _shortened(error) from (error if os.environ.get(DEBUG_VARIABLE) else None)

    @staticmethod
    def _delete(props: dict[str, Any]) -> None:
        """Remove the document, only if it is still the one this publisher wrote (its recorded hash)."""
        from components.targets import FileTarget, open_target

        name = props["target"]
        with _operation(name, "delete"):
            target = open_target(name, props.get("publish_root"))
            current = target.read()
            if current is not None and _sha256(current) == props.get("sha256"):
                target.delete()
            elif isinstance(target, FileTarget):
                target.clean()

    @staticmethod
    def _publish(props: dict[str, Any], previous_sha: str | None, first_published: dict[str, str],
                 *, pin: str | None = None, signed: str | None = None) -> dict[str, Any]:
        from components.targets import FileTarget, open_target

        name = props["target"]
        content: str = props["content"]
        if props.get("envelope"):
            if signed is None:
                from components.signing import Signer, sign

                with _operation(name, "sign"):
                    signed = sign(props["envelope"], props["format"], content,
                                  [Signer.of(s) for s in props.get("signers") or []],
                                  private_keys=dict(props.get("signing_keys") or {}), pin=pin)
            content = signed
        sha = _sha256(content)
        now = _now()
        wrote = False
        with _operation(name, "open"):
            target = open_target(name, props.get("publish_root"))
        if isinstance(target, FileTarget):
            with _operation(name, "clean up leftover temporary files"):
                target.clean()  # what a killed write left behind
        if sha != previous_sha:
            with _operation(name, "read"):
                current = target.read()
            if current != content.encode():
                with _operation(name, "write"):
                    target.write(
                        content.encode(), content_type=props["content_type"],
                        cache_control=props["cache_control"]
                    )
                wrote = True
        kids = list(props.get("kids") or [])
        # Keep the first-published time of every kid still present; new kids are published now.
        published = {kid: first_published.get(kid, now) for kid in kids}
        return {
            **{k: v for k, v in props.items() if k not in SECRET_INPUTS},
            **({"signed_content": content} if props.get("envelope") else {}),
            "sha256": sha,
            "first_published": published,
            "published_at": now if wrote or previous_sha is None else props.get("published_at"),
        }


@dataclass
class PublicationArgs:
    target: pulumi.Input[str]
    format: pulumi.Input[str]
    content: pulumi.Input[str]
    """The document's canonical text."""
    kids: pulumi.Input[list[str]]
    """Key ids the document publishes."""
    cache_control: pulumi.Input[str]
    keyset: pulumi.Input[str]
    content_type: pulumi.Input[str] = "application/json"
    publish_root: pulumi.Input[str] | None = None
    """``file://`` targets: the stack's publish root (``key-rotation:publishRoot``)."""
    envelope: str | None = None
    """How ``content`` is signed before it is published (components.signing.SIGNED_KINDS): ``dsse``,
    as the payload of an envelope signed by ``signers``; ``jws-lines``, each line as a compact JWS
    by the one signer (a revocation list)."""
    signers: pulumi.Input[list[dict[str, Any]]] | None = None
    """The signing generations (components.signing.Signer, public references only), in order."""
    signing_keys: pulumi.Input[dict[str, str]] | None = None
    """Per kid, the private key of each ``software`` signer: a Pulumi secret, used by the provider
    to sign and never returned in its outputs."""


class Publication(Resource, module=PUBLICATION[0], name=PUBLICATION[1]):
    target: pulumi.Output[str]
    sha256: pulumi.Output[str]
    first_published: pulumi.Output[dict[str, str]]
    """Per kid, when the publisher first wrote it to this target (RFC 3339)."""
    published_at: pulumi.Output[str]
    signed_content: pulumi.Output[str]
    """A signed document: the envelope (or the JWS lines) as written (public: payload and signatures)."""

    def __init__(self, name: str, args: PublicationArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "target": args.target,
            "format": args.format,
            "content": args.content,
            "kids": args.kids,
            "cache_control": args.cache_control,
            "content_type": args.content_type,
            "keyset": args.keyset,
            **({"publish_root": args.publish_root} if args.publish_root is not None else {}),
            **({"envelope": args.envelope, "signers": args.signers, "signed_content": None}
               if args.envelope is not None else {}),
            **({"signing_keys": pulumi.Output.secret(args.signing_keys)}
               if args.signing_keys is not None else {}),
            "sha256": None,
            "first_published": None,
            "published_at": None,
        }
        super().__init__(PublicationProvider(), name, props, opts)
