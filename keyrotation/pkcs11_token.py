"""Keys generated and kept inside a PKCS#11 token (python-pkcs11), for backend ``pkcs11``.

Every call opens its own session and closes it: the dynamic provider that uses this module is
pickled into the state and unpickled in another process, so it never holds a session or the PIN.

A generation's key pair is labelled ``<keyset>/<generation>`` and has that text as its CKA_ID.
The private key is created with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true and CKA_EXTRACTABLE
false: it never leaves the token. What comes back is the public key (SPKI PEM), the label and
the id; nothing private.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .errors import KeyRotationError

PIN_ENV = "PKCS11_PIN"

_CURVES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1", "secp256k1": "secp256k1"}
SIGNING_STATES = ("pending", "active", "retiring")
# The engine calls a provider from several threads; C_Initialize must happen once per module and
# process, and sessions are serialised (a token is a single device).
_LOCK = threading.RLock()
_LIBS: dict[str, object] = {}
"""States whose private key keeps CKA_SIGN true; retired and revoked keys can no longer sign."""


class TokenError(KeyRotationError, RuntimeError):
    """A PKCS#11 failure, said with the keyset, generation and token it concerns."""


@dataclass(frozen=True)
class Where:
    module: str
    token: str
    keyset: str
    generation: str | None = None

    @property
    def label(self) -> str:
        return f"{self.keyset}/{self.generation}"

    @property
    def key_id(self) -> bytes:
        return self.label.encode()

    def say(self, message: str) -> TokenError:
        generation = f", generation '{self.generation}'" if self.generation is not None else ""
        return TokenError(
            f"keyset '{self.keyset}'{generation}, PKCS#11 token '{self.token}' ({self.module}): {message}"
        )

    def uri(self) -> str:
        """The key's RFC 7512 PKCS#11 URI, with the module's path (what a consumer opens)."""
        pct = "".join(f"%{b:02x}" for b in self.key_id)
        safe = "-._~!$&'()*+,=:@"
        return (f"pkcs11:token={quote(self.token, safe=safe)};object={quote(self.label, safe=safe)}"
                f";id={pct};type=private?module-path={quote(self.module, safe='/')}")


def pin(configured: str | None = None) -> str | None:
    """The PIN: the secret config value if given, else ``PKCS11_PIN``."""
    return configured or os.environ.get(PIN_ENV) or None


def _lib(where: Where):
    import pkcs11

    if not os.path.isfile(where.module):
        raise where.say("the PKCS#11 module does not exist (pkcs11.module)")
    with _LOCK:
        if where.module not in _LIBS:
            try:
                _LIBS[where.module] = pkcs11.lib(where.module)
            except (OSError, RuntimeError, pkcs11.PKCS11Error) as error:
                raise where.say(f"the PKCS#11 module cannot be loaded: {error}") from None
        return _LIBS[where.module]


@contextmanager
def session(where: Where, user_pin: str | None, *, rw: bool = True) -> Iterator:

    if not user_pin:
        raise where.say(f"no PIN: set the secret key-rotation:pkcs11Pin or {PIN_ENV}")
    with _LOCK, _opened(where, user_pin, rw) as opened:
        yield opened


@contextmanager
def _opened(where: Where, user_pin: str, rw: bool) -> Iterator:
    import pkcs11
    from pkcs11 import exceptions

    lib = _lib(where)
    try:
        token = lib.get_token(token_label=where.token)
    except exceptions.NoSuchToken:
        labels = sorted({slot.get_token().label for slot in lib.get_slots(token_present=True)} - {""})
        raise where.say(f"no such token in the module (tokens: {', '.join(labels) or 'none'})") from None
    except exceptions.MultipleTokensReturned:
        raise where.say("more than one token has this label") from None
    try:
        opened = token.open(rw=rw, user_pin=user_pin)
    except exceptions.PinIncorrect:
        raise where.say("the PIN is wrong") from None
    except exceptions.PinLocked:
        raise where.say("the user PIN is locked") from None
    except pkcs11.PKCS11Error as error:
        raise where.say(f"cannot log in: {type(error).__name__} {error}") from None
    try:
        yield opened
    finally:
        opened.close()


def check(where: Where, user_pin: str | None) -> None:
    """Module, token and PIN work (the program calls this before it registers any resource)."""
    with session(where, user_pin, rw=False):
        pass


def present(where: Where, user_pin: str | None) -> bool:
    """Whether the generation's private key is in the token."""
    from pkcs11 import ObjectClass

    with session(where, user_pin, rw=False) as sess:
        return bool(_objects(sess, where, ObjectClass.PRIVATE_KEY))


def _objects(sess, where: Where, object_class) -> list:
    from pkcs11 import Attribute

    return list(sess.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: where.label,
                                  Attribute.ID: where.key_id}))


def generate(where: Where, user_pin: str | None, key_type: str, curve: str | None, key_size: int) -> str:
    """Generate the generation's key pair in the token; return its public key as SPKI PEM."""
    from pkcs11 import Attribute, KeyType, ObjectClass, PKCS11Error
    from pkcs11.util.ec import encode_named_curve_parameters

    with session(where, user_pin) as sess:
        if _objects(sess, where, ObjectClass.PRIVATE_KEY) or _objects(sess, where, ObjectClass.PUBLIC_KEY):
            raise where.say(f"a key labelled '{where.label}' is already in the token; a generation's key"
                            " is created once (remove the stray object or use a new generation id)")
        common = {Attribute.TOKEN: True, Attribute.LABEL: where.label, Attribute.ID: where.key_id}
        private = {**common, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                   Attribute.EXTRACTABLE: False, Attribute.SIGN: True}
        public = {**common, Attribute.VERIFY: True}
        try:
            if key_type == "EC":
                params = sess.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[str(curve)])},
                    local=True
                )
                pub, _priv = params.generate_keypair(store=True, public_template=public,
                                                     private_template=private)
            else:
                pub, _priv = sess.generate_keypair(KeyType.RSA, key_size, store=True,
                                                   public_template=public, private_template=private)
        except PKCS11Error as error:
            raise where.say(f"the token did not generate the key: {type(error).__name__} {error}") from None
        try:
            return _public_pem(pub, key_type, curve)
        except Exception:
            # Nothing half-way: a key whose public half cannot be read is removed again.
            _destroy_all(sess, where)
            raise


def public_pem(where: Where, user_pin: str | None, key_type: str, curve: str | None) -> str:
    """The generation's public key as read from the token; TokenError if the key is gone."""
    from pkcs11 import ObjectClass

    with session(where, user_pin, rw=False) as sess:
        publics = _objects(sess, where, ObjectClass.PUBLIC_KEY)
        if not _objects(sess, where, ObjectClass.PRIVATE_KEY) or not publics:
            raise where.say(f"the key labelled '{where.label}' is no longer in the token")
        return _public_pem(publics[0], key_type, curve)


def private_attributes(where: Where, user_pin: str | None) -> dict[str, bool]:
    """CKA_TOKEN/PRIVATE/SENSITIVE/EXTRACTABLE/SIGN of the private key (what tests and audits read)."""
    from pkcs11 import Attribute, ObjectClass

    with session(where, user_pin, rw=False) as sess:
        keys = _objects(sess, where, ObjectClass.PRIVATE_KEY)
        if not keys:
            raise where.say(f"the key labelled '{where.label}' is no longer in the token")
        names = ("TOKEN", "PRIVATE", "SENSITIVE", "EXTRACTABLE", "SIGN", "ALWAYS_SENSITIVE",
                 "NEVER_EXTRACTABLE")
        return {name: bool(keys[0][getattr(Attribute, name)]) for name in names}


def sign(where: Where, user_pin: str | None, algorithm: str, message: bytes) -> bytes:
    """Sign ``message`` with the generation's private key inside the token (it never leaves it).

    ECDSA: the digest is made here and signed with CKM_ECDSA, and the token's raw ``r || s`` is
    returned DER-encoded (what KMS, OpenSSL and DSSE verifiers take); RSA: CKM_SHA*_RSA_PKCS, or
    CKM_SHA*_RSA_PKCS_PSS with MGF1 of the same digest and a salt as long as it.
    """
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from pkcs11 import MGF, Mechanism, ObjectClass, PKCS11Error

    from .algorithms import ALGORITHMS
    from .envelope import digest

    spec = ALGORITHMS[algorithm]
    bits = str(spec.hash_name).removeprefix("SHA")
    with session(where, user_pin, rw=False) as sess:
        keys = _objects(sess, where, ObjectClass.PRIVATE_KEY)
        if not keys:
            raise where.say(f"the key labelled '{where.label}' is no longer in the token")
        try:
            if spec.pkcs11_key_type == "EC":
                raw = keys[0].sign(digest(algorithm, message), mechanism=Mechanism.ECDSA)
                half = len(raw) // 2
                return encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                            int.from_bytes(raw[half:], "big"))
            if algorithm.startswith("PS"):
                mechanism = getattr(Mechanism, f"SHA{bits}_RSA_PKCS_PSS")
                param = (getattr(Mechanism, f"SHA{bits}"), getattr(MGF, f"SHA{bits}"), int(bits) // 8)
                signature: bytes = keys[0].sign(message, mechanism=mechanism, mechanism_param=param)
                return signature
            rsa: bytes = keys[0].sign(message, mechanism=getattr(Mechanism, f"SHA{bits}_RSA_PKCS"))
            return rsa
        except PKCS11Error as error:
            raise where.say(f"the token did not sign: {type(error).__name__} {error}") from None


def apply_state(where: Where, user_pin: str | None, state: str) -> str:
    """Make the token key match the generation's state; return what was done, for the state.

    destroyed: both objects are destroyed in the token. retired/revoked: CKA_SIGN becomes false,
    or, where the token refuses to change it, ``sign-unchangeable`` is returned (and said).
    """
    from pkcs11 import Attribute, ObjectClass, PKCS11Error

    with session(where, user_pin) as sess:
        privates = _objects(sess, where, ObjectClass.PRIVATE_KEY)
        if state == "destroyed":
            _destroy_all(sess, where)
            return "destroyed"
        if not privates:
            raise where.say(f"the key labelled '{where.label}' is no longer in the token")
        sign = state in SIGNING_STATES
        key = privates[0]
        if bool(key[Attribute.SIGN]) != sign:
            try:
                key[Attribute.SIGN] = sign
            except PKCS11Error:
                return "sign-unchangeable"
        return "signs" if sign else "cannot-sign"


def destroy(where: Where, user_pin: str | None) -> None:
    with session(where, user_pin) as sess:
        _destroy_all(sess, where)


def _destroy_all(sess, where: Where) -> None:
    from pkcs11 import ObjectClass

    for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        for obj in _objects(sess, where, object_class):
            obj.destroy()


def _public_pem(pub, key_type: str, curve: str | None) -> str:
    from asn1crypto import core
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from pkcs11 import Attribute

    key: Any
    if key_type == "EC":
        assert curve is not None
        point = core.OctetString.load(pub[Attribute.EC_POINT]).native
        curve_class: Any = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1,
                       "secp256k1": ec.SECP256K1}[curve]
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve_class(), point)
    else:
        key = rsa.RSAPublicNumbers(
            int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(pub[Attribute.MODULUS], "big")
        ).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
