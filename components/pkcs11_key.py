"""A generation's key pair generated inside a PKCS#11 token: a Pulumi dynamic resource.

The private key never leaves the token (keyrotation.pkcs11_token). The state holds the label,
the id, the module and token names, the public key and what was done to the key in the token;
no PIN, no private material. The PIN is read in the provider's process: the secret config value
``key-rotation:pkcs11Pin`` (handed to ``configure``), else ``PKCS11_PIN``. The provider is
pickled into the state, so it never holds a session and drops the PIN when pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from components.backend import KEY_OUTPUTS, GeneratedKeyArgs, immutable_changes
from components.pin import PinConfigured
from keyrotation.names import PKCS11_KEY

# Fixed at creation: another module, token, algorithm or size would be another key.
IMMUTABLE = ("keyset", "generation", "algorithm", "key_size", "module", "token")
METADATA = ("state", "environment", "purpose", "created_at", "activated_at")


class Pkcs11KeyProvider(PinConfigured):
    def _where(self, props: dict[str, Any]):
        from keyrotation.pkcs11_token import Where

        return Where(props["module"], props["token"], props["keyset"], props["generation"])

    def _user_pin(self) -> str | None:
        from keyrotation.pkcs11_token import pin

        return pin(self._pin)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(prop, message) for prop, message in
                    immutable_changes(olds, news, IMMUTABLE, created="created once in its token")]
        if not failures:
            failures += self._token_failures(olds, news)
        return CheckResult(news, failures)

    def _token_failures(self, olds: dict[str, Any], news: dict[str, Any]) -> list[CheckFailure]:
        """What the token says before anything changes (a check failure, not a crash)."""
        from keyrotation import pkcs11_token

        if any(not isinstance(news.get(p), str) for p in ("module", "token", "keyset", "generation")):
            return []
        where = self._where(news)
        try:
            if olds:
                if olds.get("token_state") != "destroyed" and not pkcs11_token.present(where,
                                                                                       self._user_pin()):
                    return [CheckFailure("label", str(where.say(
                        f"the key labelled '{where.label}' is no longer in the token; restore it from the"
                        " token's backup, or revoke the generation and rotate")))]
            elif news.get("state") != "destroyed" and pkcs11_token.present(where, self._user_pin()):
                return [CheckFailure("label", str(where.say(
                    f"a key labelled '{where.label}' is already in the token; a generation's key is created"
                    " once (remove the stray object or use a new generation id)")))]
        except pkcs11_token.TokenError as error:
            return [CheckFailure("token", str(error))]
        return []

    def create(self, props: dict[str, Any]) -> CreateResult:
        from keyrotation import keys, pkcs11_token
        from keyrotation.algorithms import ALGORITHMS

        spec = ALGORITHMS[props["algorithm"]]
        where = self._where(props)
        outs = {**props, "label": where.label, "key_id": where.key_id.hex(), "uri": where.uri()}
        if props.get("state") == "destroyed":
            # Declared destroyed before it ever existed: nothing to generate.
            return CreateResult(where.label, {**outs, "public_key_pem": "", "thumbprint": where.label,
                                              "fingerprint": "", "token_state": "destroyed"})
        pin = self._user_pin()
        pem = pkcs11_token.generate(where, pin, str(spec.pkcs11_key_type), spec.curve,
                                    int(props.get("key_size") or 2048))
        try:
            token_state = pkcs11_token.apply_state(where, pin, str(props.get("state")))
        except Exception:
            pkcs11_token.destroy(where, pin)
            raise
        return CreateResult(where.label, {
            **outs, "public_key_pem": pem, "thumbprint": keys.thumbprint(pem),
            "fingerprint": keys.fingerprint(pem), "token_state": token_state,
        })

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [p for p in METADATA if olds.get(p) != news.get(p)]
        return DiffResult(changes=bool(changed), replaces=[], stables=list(IMMUTABLE),
                          delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from keyrotation import pkcs11_token
        from keyrotation.algorithms import ALGORITHMS

        spec = ALGORITHMS[olds["algorithm"]]
        where, pin = self._where(olds), self._user_pin()
        outs = {**olds, **news}
        if olds.get("token_state") == "destroyed":
            return UpdateResult(outs)
        # The key must still be the one the documents publish.
        if news.get("state") != "destroyed" and str(olds.get("public_key_pem", "")).strip() != \
                pkcs11_token.public_pem(where, pin, str(spec.pkcs11_key_type), spec.curve).strip():
            raise where.say("the token's public key is not the one recorded in the state")
        outs["token_state"] = pkcs11_token.apply_state(where, pin, str(news.get("state")))
        if outs["token_state"] == "sign-unchangeable":
            pulumi.log.warn(f"{where.say('the token does not let CKA_SIGN be changed')}; the key can still"
                            " sign: disable it with the token's own tools")
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from keyrotation import pkcs11_token
        from keyrotation.algorithms import ALGORITHMS

        if props.get("token_state") != "destroyed":
            spec = ALGORITHMS[props["algorithm"]]
            pkcs11_token.public_pem(self._where(props), self._user_pin(), str(spec.pkcs11_key_type),
                                    spec.curve)
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from keyrotation import pkcs11_token

        if props.get("token_state") != "destroyed":
            pkcs11_token.destroy(self._where(props), self._user_pin())


@dataclass(kw_only=True)
class Pkcs11KeyArgs(GeneratedKeyArgs):
    """The generation, and the token that holds its key pair."""

    module: pulumi.Input[str]
    token: pulumi.Input[str]


class Pkcs11Key(Resource, module=PKCS11_KEY[0], name=PKCS11_KEY[1]):
    public_key_pem: pulumi.Output[str]
    """SubjectPublicKeyInfo PEM read back from the token ("" if never generated)."""
    thumbprint: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    label: pulumi.Output[str]
    """CKA_LABEL of both key objects: ``<keyset>/<generation>``."""
    key_id: pulumi.Output[str]
    """CKA_ID, hex."""
    uri: pulumi.Output[str]
    """RFC 7512 PKCS#11 URI of the private key, with ``module-path``."""
    token_state: pulumi.Output[str]
    """``signs``, ``cannot-sign`` (CKA_SIGN false), ``sign-unchangeable`` or ``destroyed``."""

    def __init__(self, name: str, args: Pkcs11KeyArgs, opts: pulumi.ResourceOptions | None = None):
        props = args.inputs(*KEY_OUTPUTS, "label", "key_id", "uri", "token_state")
        opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(protect=True), opts)
        super().__init__(Pkcs11KeyProvider(), name, props, opts)
