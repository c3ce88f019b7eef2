"""The clouds behind the engine-faithful harness: AWS KMS and S3 in moto's server, Cloud KMS and GCS.

`tests.engine.Engine` takes `handlers` (type token -> fn(MockResourceArgs) -> (id, outputs)) and an
`invoke` function. These classes answer them the way the AWS and Google providers would, by
calling a real API:

- `AwsKms`: `aws:kms/key:Key` and `aws:kms/alias:Alias` create and update keys and aliases in
  moto's KMS server (real key ids, ARNs, key pairs, tags, rotation settings), and
  `aws:kms/getPublicKey:getPublicKey` is answered from it. moto lacks ECC_NIST_EDWARDS25519:
  such keys are emulated here with real Ed25519 key pairs under AWS-shaped ids and ARNs
  (`emulated` says which). moto is more lenient than AWS in three places that matter here, and
  AWS's rule is applied before calling it: GetPublicKey refuses keys that are not enabled
  (DisabledException / KMSInvalidStateException), native rotation exists only for
  SYMMETRIC_DEFAULT keys, and its period lies in 90..2560 days. moto also drops the rotation
  period it is given; `describe()` reports the one the provider sent. `enforce_aws_key_states()`
  makes moto's server itself refuse what AWS refuses by key state (enable/disable a key pending
  deletion, cancel a deletion that is not pending, use a key that is not enabled), for the calls
  the restored-key provider makes with boto3.
- `GcpKms`: `gcp:kms/keyRing:KeyRing`, `gcp:kms/cryptoKey:CryptoKey` and
  `gcp:kms/cryptoKeyVersion:CryptoKeyVersion` are emulated with real key pairs per version (there
  is no Cloud KMS emulator), following Cloud KMS's rules: KeyRings and CryptoKeys are unique
  (ALREADY_EXISTS), versions are numbered from 1, a version's algorithm comes from the key's
  version template and must fit its purpose, secp256k1 only at HSM, only ENABLED/DISABLED can be
  set, and `gcp:kms/getKMSCryptoKeyVersion:getKMSCryptoKeyVersion` returns public keys of
  ENABLED versions only (FAILED_PRECONDITION otherwise).
- `GcpKms.endpoint` serves the emulated versions over Cloud KMS's REST API on loopback (GET a
  version, PATCH its state, `:restore`, `:destroy`, `:asymmetricSign` with the versions' private
  keys), with Cloud KMS's documented rules: only ENABLED and DISABLED can be set, and only between
  themselves; `:destroy` takes an ENABLED or DISABLED version to DESTROY_SCHEDULED; `:restore`
  takes a DESTROY_SCHEDULED version back to DISABLED, and any other state is FAILED_PRECONDITION
  (a DESTROYED version is gone for good); `:asymmetricSign` signs with ENABLED versions only,
  takes `data` (at most 64 KiB, 8 KiB at HSM) for EC_SIGN_ED25519 and only there, and for the
  other algorithms a `digest` of the hash their name says (`sha256`, `sha384`, `sha512`).
  `CloudEngine` points `CLOUDKMS_EMULATOR_HOST` at it (components/gcp_kms_rest.py: the restored-key
  provider and the signing path call it).
- The harness calls no provider for deletes of these resources; `apply_deletes(before, run)`
  plays the providers' delete for what a run deleted: AWS ScheduleKeyDeletion with the key's
  deletion window and DeleteAlias, Cloud KMS DestroyCryptoKeyVersion (DESTROY_SCHEDULED).

`cloud_servers()` starts moto's server and the Cloud Storage emulator (per test module);
`Clouds(servers).engine(...)` is an Engine wired to them, which points the publisher's boto3 and
google-cloud-storage clients at them while it runs, creates the buckets its stack publishes to,
and plays the providers' deletes. `cloud_engine(...)` does the same on process-wide servers, for
tests that only need the shipped stacks' cloud keysets to exist.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from tests.engine import Engine, ProgramFailed
from tests.project import saved_environment

ACCOUNT = "123456789012"
REGION = "us-east-1"
GCP_PROJECT = "key-rotation-tests"
KMS_TEST_PROJECT = "kms-tests"
"""The project the cloud tests' stacks name (``gcp:project``) and their ``clouds`` fixture serves."""

AWS_KEY = "aws:kms/key:Key"
AWS_ALIAS = "aws:kms/alias:Alias"
AWS_GET_PUBLIC_KEY = "aws:kms/getPublicKey:getPublicKey"
GCP_KEY_RING = "gcp:kms/keyRing:KeyRing"
GCP_CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
GCP_KEY_VERSION = "gcp:kms/cryptoKeyVersion:CryptoKeyVersion"
GCP_GET_KEY_VERSION = "gcp:kms/getKMSCryptoKeyVersion:getKMSCryptoKeyVersion"

MOTO_LACKS = frozenset({"ECC_NIST_EDWARDS25519"})
"""KeySpecs moto's KMS rejects; emulated here with real key pairs."""


class CloudError(Exception):
    """An error as the cloud's API would return it (the provider fails the operation with it)."""


def _pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Servers:
    """moto's server (KMS, S3) and a Cloud Storage API, on free loopback ports."""

    moto: str
    gcs: str

    @property
    def environment(self) -> dict[str, str]:
        """What points boto3 and google-cloud-storage, built anywhere in the process, at them."""
        return {
            "AWS_ENDPOINT_URL": self.moto,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "STORAGE_EMULATOR_HOST": self.gcs,
        }

    def s3(self):
        return boto3.client("s3", endpoint_url=self.moto, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def kms(self, region: str = REGION):
        return boto3.client("kms", endpoint_url=self.moto, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def storage(self):
        with environment({"STORAGE_EMULATOR_HOST": self.gcs}):
            from google.cloud import storage

            return storage.Client(project=GCP_PROJECT)

    def create_buckets(self, config: dict) -> None:
        """The buckets a stack's publish targets name (owned elsewhere; the program only writes)."""
        keysets = config.get("key-rotation:keysets") or {}
        if isinstance(keysets, str):
            keysets = json.loads(keysets)
        for keyset in keysets.values():
            for publication in keyset.get("publish") or []:
                scheme, _, rest = publication["target"].partition("://")
                bucket = rest.split("/", 1)[0]
                if scheme == "s3" and bucket not in self._s3_buckets():
                    self.s3().create_bucket(Bucket=bucket)
                elif scheme == "gs" and self.storage().lookup_bucket(bucket) is None:
                    self.storage().create_bucket(bucket)

    def _s3_buckets(self) -> set[str]:
        return {b["Name"] for b in self.s3().list_buckets().get("Buckets", [])}

    def read_s3(self, target: str) -> dict:
        """A signed GetObject (moto's server routes plain GETs of */.well-known/jwks.json to Cognito)."""
        bucket, _, key = target.removeprefix("s3://").partition("/")
        answer = self.s3().get_object(Bucket=bucket, Key=key)
        return {"body": answer["Body"].read(), "content_type": answer["ContentType"],
                "cache_control": answer.get("CacheControl")}

    def read_gs(self, target: str) -> dict:
        bucket, _, name = target.removeprefix("gs://").partition("/")
        blob = self.storage().bucket(bucket).get_blob(name)
        if blob is None:
            raise KeyError(target)
        # Metadata first: a download refreshes the blob from the media response's headers.
        meta = {"content_type": blob.content_type, "cache_control": blob.cache_control,
                "generation": blob.generation}
        return {**meta, "body": blob.download_as_bytes()}


_AWS_STATE_RULES = {
    # KMS operation -> key states AWS accepts it in ("Key states of AWS KMS keys", AWS KMS developer
    # guide); moto performs them in any state.
    "enable_key": ("Enabled", "Disabled"),
    "disable_key": ("Enabled", "Disabled"),
    "cancel_key_deletion": ("PendingDeletion",),
    "encrypt": ("Enabled",),
    "sign": ("Enabled",),
}


_ENFORCED = "_key_rotation_state_rules"
"""Set on moto's KmsBackend once enforce_aws_key_states has patched it."""


def enforce_aws_key_states() -> None:
    """Make moto's KMS refuse what AWS refuses by key state: EnableKey/DisableKey on a key pending
    deletion, CancelKeyDeletion on one that is not, Encrypt/Decrypt/Sign under a key that is not
    enabled (DisabledException, KMSInvalidStateException). Idempotent; moto's server runs in this
    process, so its backend is patched here."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend

    if getattr(KmsBackend, _ENFORCED, False):
        return

    def refuse(backend, key_id: str, operation: str, allowed: tuple[str, ...]) -> None:
        try:
            key = backend.keys.get(backend.any_id_to_key_id(key_id)) if key_id else None
        except Exception:  # an unknown alias: moto's own operation answers NotFound
            return
        if key is None or key.key_state in allowed:
            return
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")

    def guarded(name: str, allowed: tuple[str, ...]):
        original = getattr(KmsBackend, name)

        def method(self, key_id, *args, **kwargs):
            refuse(self, key_id, name, allowed)
            return original(self, key_id, *args, **kwargs)

        return method

    patches: dict[str, Callable[..., Any]] = {
        name: guarded(name, allowed) for name, allowed in _AWS_STATE_RULES.items()
    }
    original_decrypt = KmsBackend.decrypt

    def decrypt(self, ciphertext_blob, encryption_context, key_id=None):
        plaintext, actual = original_decrypt(self, ciphertext_blob, encryption_context, key_id)
        refuse(self, actual, "decrypt", ("Enabled",))
        return plaintext, actual

    patches["decrypt"] = decrypt
    for name, method in patches.items():
        setattr(KmsBackend, name, method)
    setattr(KmsBackend, _ENFORCED, True)


@contextlib.contextmanager
def cloud_servers() -> Iterator[Servers]:
    """Start both servers for a `with` block (a test module's fixture)."""
    from gcp_storage_emulator.server import create_server
    from moto.server import ThreadedMotoServer

    enforce_aws_key_states()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    gcs = create_server("127.0.0.1", 0, in_memory=True)
    gcs._api.daemon = True  # its thread must never keep the test process alive
    gcs.start()
    try:
        host, port = moto.get_host_and_port()
        gcs_host, gcs_port = gcs._api._httpd.server_address
        yield Servers(moto=f"http://{host}:{port}", gcs=f"http://{gcs_host}:{gcs_port}")
    finally:
        gcs.stop()
        moto.stop()


_SHARED: list[Servers] = []


def shared_servers() -> Servers:
    """One pair of servers for the whole test process, started on first use.

    For tests that run the shipped stacks for other reasons (Kubernetes delivery, policies): they
    need KMS keys and buckets to exist, not a clean account. Tests about the clouds themselves use
    `cloud_servers()` per module.
    """
    if not _SHARED:
        context = cloud_servers()
        _SHARED.append(context.__enter__())
        atexit.register(context.__exit__, None, None, None)
    return _SHARED[0]


def cloud_engine(project_dir, stack: str, *, config: dict | None = None) -> CloudEngine:
    """An Engine for a stack with cloud keysets, backed by the process-wide servers."""
    return Clouds(shared_servers()).engine(project_dir, stack, config=config)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    with saved_environment(*values):
        os.environ.update(values)
        yield


# ---------------------------------------------------------------------------------------------
# AWS KMS (moto)


@dataclass
class EmulatedAwsKey:
    key_id: str
    arn: str
    spec: str
    usage: str
    private_key: Any
    description: str = ""
    enabled: bool = True
    state: str = "Enabled"
    tags: dict[str, str] = field(default_factory=dict)
    pending_window_days: int | None = None


class AwsKms:
    """The AWS provider's KMS resources and invokes, backed by moto's KMS server."""

    def __init__(self, servers: Servers, region: str = REGION):
        self.servers = servers
        self.region = region
        self.by_name: dict[str, str] = {}
        """Pulumi resource name -> key id (updates do not carry the id)."""
        self.emulated: dict[str, EmulatedAwsKey] = {}
        self.emulated_aliases: dict[tuple[str, str], str] = {}
        self.rotation_periods: dict[str, int] = {}

    @property
    def handlers(self) -> dict:
        return {AWS_KEY: self.key, AWS_ALIAS: self.alias}

    def client(self, region: str | None = None):
        return self.servers.kms(region or self.region)

    # -- resources ------------------------------------------------------------------------------

    def key(self, args) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        region = inputs.get("region") or self.region
        spec = inputs.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        usage = inputs.get("keyUsage") or "ENCRYPT_DECRYPT"
        self._check_rotation(spec, inputs)
        key_id = self.by_name.get(args.name)
        if key_id is None:
            key_id = self._create(spec, usage, inputs, region)
            self.by_name[args.name] = key_id
        self._apply(key_id, inputs, region)
        arn = self.arn(key_id, region)
        return key_id, {**inputs, "keyId": key_id, "arn": arn, "tagsAll": inputs.get("tags") or {}}

    def _check_rotation(self, spec: str, inputs: dict) -> None:
        if not inputs.get("enableKeyRotation"):
            return
        if spec != "SYMMETRIC_DEFAULT":
            raise CloudError(f"UnsupportedOperationException: {spec} KMS keys do not support automatic "
                             "rotation")
        period = int(inputs.get("rotationPeriodInDays") or 365)
        if not 90 <= period <= 2560:
            raise CloudError(f"ValidationException: RotationPeriodInDays {period} must be between 90 and "
                             "2560")

    def _create(self, spec: str, usage: str, inputs: dict, region: str) -> str:
        tags = inputs.get("tags") or {}
        if spec in MOTO_LACKS:
            key_id = str(uuid.uuid4())
            self.emulated[key_id] = EmulatedAwsKey(
                key_id=key_id, arn=self.arn(key_id, region), spec=spec, usage=usage,
                private_key=ed25519.Ed25519PrivateKey.generate(), description=inputs.get("description", ""),
                tags=dict(tags),
            )
            return key_id
        metadata = self.client(region).create_key(
            KeySpec=spec, KeyUsage=usage, Description=inputs.get("description", ""),
            MultiRegion=bool(inputs.get("multiRegion")),
            Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()],
        )["KeyMetadata"]
        return metadata["KeyId"]

    def _apply(self, key_id: str, inputs: dict, region: str) -> None:
        enabled = inputs.get("isEnabled", True)
        tags = inputs.get("tags") or {}
        if key_id in self.emulated:
            key = self.emulated[key_id]
            key.enabled, key.tags, key.description = enabled, dict(tags), inputs.get("description", "")
            key.state = "Enabled" if enabled else "Disabled"
            return
        kms = self.client(region)
        if enabled:
            kms.enable_key(KeyId=key_id)
        else:
            kms.disable_key(KeyId=key_id)
        kms.update_key_description(KeyId=key_id, Description=inputs.get("description", ""))
        current = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
        stale = [k for k in current if k not in tags]
        if stale:
            kms.untag_resource(KeyId=key_id, TagKeys=stale)
        if tags:
            kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])
        if inputs.get("enableKeyRotation"):
            period = int(inputs.get("rotationPeriodInDays") or 365)
            kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=period)
            self.rotation_periods[key_id] = period  # moto accepts the period but does not keep it
        elif kms.describe_key(KeyId=key_id)["KeyMetadata"].get("KeySpec") == "SYMMETRIC_DEFAULT":
            kms.disable_key_rotation(KeyId=key_id)

    def alias(self, args) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        region = inputs.get("region") or self.region
        name, target = inputs["name"], inputs["targetKeyId"]
        if target in self.emulated:
            self.emulated_aliases[(region, name)] = target
        else:
            kms = self.client(region)
            existing = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
            if name in existing:
                kms.update_alias(AliasName=name, TargetKeyId=target)
            else:
                kms.create_alias(AliasName=name, TargetKeyId=target)
        arn = f"arn:aws:kms:{region}:{ACCOUNT}:{name}"
        return name, {**inputs, "arn": arn, "targetKeyArn": self.arn(target, region)}

    def arn(self, key_id: str, region: str | None = None) -> str:
        return f"arn:aws:kms:{region or self.region}:{ACCOUNT}:key/{key_id}"

    # -- invokes --------------------------------------------------------------------------------

    def get_public_key(self, args: dict) -> dict:
        region = args.get("region") or self.region
        key_id = self.resolve(args["keyId"], region)
        described = self.describe(key_id, region)
        state = described["KeyState"]
        if state == "Disabled":
            raise CloudError(f"DisabledException: {self.arn(key_id, region)} is disabled.")
        if state != "Enabled":
            raise CloudError(f"KMSInvalidStateException: {self.arn(key_id, region)} is {state}.")
        if key_id in self.emulated:
            key = self.emulated[key_id]
            der = _der(key.private_key.public_key())
            spec, usage, signing = key.spec, key.usage, ["ED25519_SHA_512"]
        else:
            answer = self.client(region).get_public_key(KeyId=key_id)
            der = answer["PublicKey"]
            spec, usage = answer.get("KeySpec") or answer["CustomerMasterKeySpec"], answer["KeyUsage"]
            signing = answer.get("SigningAlgorithms", [])
        pem = _pem(serialization.load_der_public_key(der))
        return {
            "arn": self.arn(key_id, region), "id": self.arn(key_id, region), "keyId": args["keyId"],
            "customerMasterKeySpec": spec, "keyUsage": usage, "signingAlgorithms": signing,
            "encryptionAlgorithms": [], "publicKey": base64.b64encode(der).decode(), "publicKeyPem": pem,
            "region": region,
        }

    # -- what tests look at ---------------------------------------------------------------------

    def resolve(self, key: str, region: str | None = None) -> str:
        """A key id from a key id, key ARN or alias name."""
        region = region or self.region
        if key.startswith("arn:"):
            key = key.rsplit(":", 1)[1].removeprefix("key/")
        if key.startswith("alias/"):
            if (region, key) in self.emulated_aliases:
                return self.emulated_aliases[(region, key)]
            return self.client(region).describe_key(KeyId=key)["KeyMetadata"]["KeyId"]
        return key

    def describe(self, key_id: str, region: str | None = None) -> dict:
        """DescribeKey's metadata, plus `Tags` and `Rotation` (GetKeyRotationStatus)."""
        if key_id in self.emulated:
            key = self.emulated[key_id]
            return {"KeyId": key.key_id, "Arn": key.arn, "KeySpec": key.spec, "KeyUsage": key.usage,
                    "Enabled": key.enabled, "KeyState": key.state, "Description": key.description,
                    "Tags": dict(key.tags), "PendingWindowInDays": key.pending_window_days,
                    "Rotation": {"KeyRotationEnabled": False}, "Emulated": True}
        kms = self.client(region)
        out = dict(kms.describe_key(KeyId=key_id)["KeyMetadata"])
        out["Tags"] = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
        out["Rotation"] = kms.get_key_rotation_status(KeyId=key_id)
        if out["Rotation"].get("KeyRotationEnabled") and key_id in self.rotation_periods:
            out["Rotation"].setdefault("RotationPeriodInDays", self.rotation_periods[key_id])
        out["Emulated"] = False
        return out

    def sign(self, key_id: str, message: bytes, algorithm: str, region: str | None = None) -> bytes:
        """kms:Sign over a RAW message (DER for ECDSA, as KMS returns it)."""
        if key_id in self.emulated:
            key = self.emulated[key_id]
            if not key.enabled:
                raise CloudError(f"DisabledException: {key.arn} is disabled.")
            return key.private_key.sign(message)
        return self.client(region).sign(
            KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm=algorithm
        )["Signature"]

    def aliases(self, region: str | None = None) -> dict[str, str]:
        """alias name -> target key id."""
        region = region or self.region
        out = {a["AliasName"]: a["TargetKeyId"] for a in self.client(region).list_aliases()["Aliases"]
               if "TargetKeyId" in a}
        out.update({name: key for (r, name), key in self.emulated_aliases.items() if r == region})
        return out

    def apply_deletes(self, before: dict, run) -> None:
        for op, urn in run.operations:
            if op != "delete" or urn not in before:
                continue
            resource = before[urn]
            region = resource.inputs.get("region") or self.region
            if resource.type == AWS_KEY:
                window = int(resource.inputs.get("deletionWindowInDays") or 30)
                if resource.id in self.emulated:
                    key = self.emulated[resource.id]
                    key.state, key.enabled, key.pending_window_days = "PendingDeletion", False, window
                else:
                    self.client(region).schedule_key_deletion(KeyId=resource.id, PendingWindowInDays=window)
            elif resource.type == AWS_ALIAS:
                name = resource.inputs["name"]
                if self.emulated_aliases.pop((region, name), None) is None:
                    self.client(region).delete_alias(AliasName=name)


# ---------------------------------------------------------------------------------------------
# Cloud KMS (emulated with real key pairs)


_GCP_ALGORITHMS: dict[str, tuple[str, Any]] = {
    # Cloud KMS's CryptoKeyVersionAlgorithm -> (purpose, key maker); an independent copy of
    # Cloud KMS's reference, so the project's own table is checked against it, not with it.
    "EC_SIGN_P256_SHA256": ("ASYMMETRIC_SIGN", lambda: ec.generate_private_key(ec.SECP256R1())),
    "EC_SIGN_P384_SHA384": ("ASYMMETRIC_SIGN", lambda: ec.generate_private_key(ec.SECP384R1())),
    "EC_SIGN_SECP256K1_SHA256": ("ASYMMETRIC_SIGN", lambda: ec.generate_private_key(ec.SECP256K1())),
    "EC_SIGN_ED25519": ("ASYMMETRIC_SIGN", ed25519.Ed25519PrivateKey.generate),
    **{
        f"RSA_SIGN_{scheme}_{size}_{digest}": (
            "ASYMMETRIC_SIGN", lambda size=size: rsa.generate_private_key(public_exponent=65537,
                                                                          key_size=size)
        )
        for scheme in ("PKCS1", "PSS")
        for size, digests in ((2048, ("SHA256",)), (3072, ("SHA256",)), (4096, ("SHA256", "SHA512")))
        for digest in digests
    },
    **{f"HMAC_SHA{bits}": ("MAC", lambda bits=bits: os.urandom(bits // 8)) for bits in (224, 256, 384, 512)},
    "GOOGLE_SYMMETRIC_ENCRYPTION": ("ENCRYPT_DECRYPT", lambda: os.urandom(32)),
}
_GCP_HSM_ONLY = frozenset({"EC_SIGN_SECP256K1_SHA256"})
_GCP_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_GCP_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_DIGESTS: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_GCP_DATA_LIMIT = 64 * 1024
_GCP_HSM_DATA_LIMIT = 8 * 1024
"""The most AsymmetricSign's ``data`` may hold: 64 KiB, 8 KiB at protection level HSM."""


@dataclass
class GcpVersion:
    name: str
    algorithm: str
    protection_level: str
    key: Any
    state: str = "ENABLED"

    @property
    def public_pem(self) -> str | None:
        return None if isinstance(self.key, bytes) else _pem(self.key.public_key())


class GcpKms:
    """The Google provider's Cloud KMS resources and invokes, emulated with real key material."""

    def __init__(self, project: str = GCP_PROJECT):
        self.project = project
        self.rings: dict[str, dict] = {}
        self.crypto_keys: dict[str, dict] = {}
        self.versions: dict[str, GcpVersion] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, str]] = []
        """(method, path) of every REST call, oldest first."""
        self._server: ThreadingHTTPServer | None = None

    # -- Cloud KMS's REST API on loopback -------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port`` of the REST API over these versions (started on first use)."""
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self))
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            atexit.register(self._server.shutdown)
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"{host}:{port}"

    def rest(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        """One call of the REST API: (HTTP status, JSON body)."""
        self.calls.append((method, path))
        name, _, verb = path.removeprefix("/v1/").partition(":")
        version = self.versions.get(name)
        if version is None:
            return _gcp_error(404, "NOT_FOUND", f"{name} not found.")
        if method == "GET" and not verb:
            return 200, self._version_json(version)
        if method == "PATCH" and not verb:
            if query.get("updateMask") != ["state"]:
                return _gcp_error(400, "INVALID_ARGUMENT", "updateMask must be 'state'.")
            wanted = body.get("state")
            if wanted not in ("ENABLED", "DISABLED"):
                return _gcp_error(400, "INVALID_ARGUMENT",
                                  f"state can only be set to ENABLED or DISABLED, not {wanted}.")
            if version.state not in ("ENABLED", "DISABLED"):
                return _gcp_error(400, "FAILED_PRECONDITION",
                                  f"{name} is not in state ENABLED or DISABLED,"
                                  f" current state is: {version.state}.")
            version.state = wanted
            return 200, self._version_json(version)
        if method == "POST" and verb == "restore":
            if version.state != "DESTROY_SCHEDULED":
                return _gcp_error(400, "FAILED_PRECONDITION",
                                  f"{name} is not in state DESTROY_SCHEDULED,"
                                  f" current state is: {version.state}.")
            version.state = "DISABLED"
            return 200, self._version_json(version)
        if method == "POST" and verb == "asymmetricSign":
            return self._asymmetric_sign(version, body)
        if method == "POST" and verb == "destroy":
            if version.state not in ("ENABLED", "DISABLED"):
                return _gcp_error(400, "FAILED_PRECONDITION",
                                  f"{name} is not in state ENABLED or DISABLED,"
                                  f" current state is: {version.state}.")
            version.state = "DESTROY_SCHEDULED"
            return 200, self._version_json(version)
        return _gcp_error(404, "NOT_FOUND", f"no method {method} {path}")

    def _asymmetric_sign(self, version: GcpVersion, body: dict) -> tuple[int, dict]:
        """AsymmetricSign as Cloud KMS takes it: ``data`` for EC_SIGN_ED25519 (which signs the data
        itself) and only then, ``digest`` with the hash the version's algorithm names for the others."""
        name, algorithm, key = version.name, version.algorithm, version.key
        if _GCP_ALGORITHMS[algorithm][0] != "ASYMMETRIC_SIGN":
            return _gcp_error(400, "FAILED_PRECONDITION",
                              f"{name} has algorithm {algorithm}, whose purpose is not ASYMMETRIC_SIGN.")
        if version.state != "ENABLED":
            return _gcp_error(400, "FAILED_PRECONDITION",
                              f"{name} is not enabled, current state is: {version.state}.")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            if "digest" in body or "data" not in body:
                return _gcp_error(400, "INVALID_ARGUMENT",
                                  f"{algorithm} signs the data: supply 'data', not 'digest'.")
            data = base64.b64decode(body["data"])
            limit = _GCP_HSM_DATA_LIMIT if version.protection_level == "HSM" else _GCP_DATA_LIMIT
            if len(data) > limit:
                return _gcp_error(400, "INVALID_ARGUMENT", f"data is larger than {limit} bytes.")
            signature = key.sign(data)
        else:
            wanted = f"sha{algorithm[-3:]}"
            digest = body.get("digest")
            if "data" in body or not isinstance(digest, dict) or set(digest) != {wanted}:
                return _gcp_error(400, "INVALID_ARGUMENT",
                                  f"{algorithm} signs a digest: supply 'digest' with '{wanted}' only.")
            signed = self._sign_digest(version, base64.b64decode(digest[wanted]))
            if signed is None:
                return _gcp_error(400, "INVALID_ARGUMENT", f"the {wanted} digest has the wrong length.")
            signature = signed
        return 200, {"signature": base64.b64encode(signature).decode(), "name": name,
                     "protectionLevel": version.protection_level}

    @staticmethod
    def _sign_digest(version: GcpVersion, value: bytes) -> bytes | None:
        """The ECDSA (DER) or RSA (PKCS#1 v1.5, PSS with a digest-long salt) signature of a digest;
        None if it is not as long as the algorithm's hash."""
        key, algorithm = version.key, version.algorithm
        digest = _DIGESTS[algorithm[-3:]]()
        if len(value) != digest.digest_size:
            return None
        prehashed = utils.Prehashed(digest)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(value, ec.ECDSA(prehashed))
        assert isinstance(key, rsa.RSAPrivateKey), algorithm
        if "_PSS_" in algorithm:
            return key.sign(value, padding.PSS(padding.MGF1(digest), digest.digest_size), prehashed)
        return key.sign(value, padding.PKCS1v15(), prehashed)

    @staticmethod
    def _version_json(version: GcpVersion) -> dict:
        return {"name": version.name, "state": version.state, "algorithm": version.algorithm,
                "protectionLevel": version.protection_level}

    @property
    def handlers(self) -> dict:
        return {GCP_KEY_RING: self.key_ring, GCP_CRYPTO_KEY: self.crypto_key,
                GCP_KEY_VERSION: self.key_version}

    # -- resources ------------------------------------------------------------------------------

    def key_ring(self, args) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        project = inputs.get("project") or self.project
        ring_id = f"projects/{project}/locations/{inputs['location']}/keyRings/{inputs['name']}"
        known = self.by_name.get((GCP_KEY_RING, args.name))
        if known is None:
            if ring_id in self.rings:
                raise CloudError(f"ALREADY_EXISTS: KeyRing {ring_id} already exists.")
            self.by_name[(GCP_KEY_RING, args.name)] = ring_id
        self.rings[ring_id] = inputs
        return ring_id, {**inputs, "project": project}

    def crypto_key(self, args) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        ring = inputs["keyRing"]
        if ring not in self.rings:
            raise CloudError(f"NOT_FOUND: KeyRing {ring} not found.")
        key_id = f"{ring}/cryptoKeys/{inputs['name']}"
        purpose = inputs.get("purpose") or "ENCRYPT_DECRYPT"
        template = inputs.get("versionTemplate") or {}
        algorithm = template.get("algorithm") or "GOOGLE_SYMMETRIC_ENCRYPTION"
        level = template.get("protectionLevel") or "SOFTWARE"
        if algorithm not in _GCP_ALGORITHMS:
            raise CloudError(f"INVALID_ARGUMENT: unknown algorithm {algorithm}.")
        if _GCP_ALGORITHMS[algorithm][0] != purpose:
            raise CloudError(f"INVALID_ARGUMENT: algorithm {algorithm} is not valid for purpose {purpose}.")
        if algorithm in _GCP_HSM_ONLY and level != "HSM":
            raise CloudError(f"INVALID_ARGUMENT: {algorithm} is only supported at protection level HSM.")
        if inputs.get("rotationPeriod") and purpose != "ENCRYPT_DECRYPT":
            raise CloudError("INVALID_ARGUMENT: automatic rotation is only supported for symmetric "
                             "encryption keys.")
        for key, value in (inputs.get("labels") or {}).items():
            if not _GCP_LABEL.fullmatch(key) or not _GCP_LABEL_VALUE.fullmatch(value):
                raise CloudError(f"INVALID_ARGUMENT: invalid label {key}={value!r}.")
        known = self.by_name.get((GCP_CRYPTO_KEY, args.name))
        if known is None:
            if key_id in self.crypto_keys:
                raise CloudError(f"ALREADY_EXISTS: CryptoKey {key_id} already exists.")
            self.by_name[(GCP_CRYPTO_KEY, args.name)] = key_id
            self.crypto_keys[key_id] = {"versions": 0}
        self.crypto_keys[key_id].update(inputs=inputs, purpose=purpose, algorithm=algorithm, level=level)
        return key_id, {**inputs, "purpose": purpose}

    def key_version(self, args) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        state = inputs.get("state") or "ENABLED"
        if state not in ("ENABLED", "DISABLED"):
            raise CloudError("INVALID_ARGUMENT: a version's state can only be set to ENABLED or DISABLED, "
                             f"not {state}.")
        name = self.by_name.get((GCP_KEY_VERSION, args.name))
        if name is None:
            crypto_key = self.crypto_keys.get(inputs["cryptoKey"])
            if crypto_key is None:
                raise CloudError(f"NOT_FOUND: CryptoKey {inputs['cryptoKey']} not found.")
            crypto_key["versions"] += 1
            name = f"{inputs['cryptoKey']}/cryptoKeyVersions/{crypto_key['versions']}"
            algorithm = crypto_key["algorithm"]
            self.versions[name] = GcpVersion(name, algorithm, crypto_key["level"],
                                             _GCP_ALGORITHMS[algorithm][1]())
            self.by_name[(GCP_KEY_VERSION, args.name)] = name
        version = self.versions[name]
        if version.state not in ("ENABLED", "DISABLED"):
            raise CloudError(f"FAILED_PRECONDITION: {name} is {version.state}.")
        version.state = state
        return name, {**inputs, "name": name, "state": state, "algorithm": version.algorithm,
                      "protectionLevel": version.protection_level, "generateTime": "2026-11-23T09:00:00Z"}

    # -- invokes --------------------------------------------------------------------------------

    def get_key_version(self, args: dict) -> dict:
        name = f"{args['cryptoKey']}/cryptoKeyVersions/{int(args.get('version') or 1)}"
        version = self.versions.get(name)
        if version is None:
            raise CloudError(f"NOT_FOUND: {name} not found.")
        if version.state != "ENABLED" and version.public_pem is not None:
            raise CloudError(f"FAILED_PRECONDITION: {name} is not enabled, current state is: "
                             f"{version.state}.")
        public_keys = [] if version.public_pem is None else [{"algorithm": version.algorithm,
                                                              "pem": version.public_pem}]
        return {"algorithm": version.algorithm, "cryptoKey": args["cryptoKey"], "id": name, "name": name,
                "protectionLevel": version.protection_level, "publicKeys": public_keys,
                "state": version.state,
                "version": int(name.rsplit("/", 1)[1])}

    # -- what tests look at ---------------------------------------------------------------------

    def new_version(self, algorithm: str, protection_level: str = "SOFTWARE") -> str:
        """The name of a new ENABLED version of ``algorithm``, in a CryptoKey of its own (for tests
        that call Cloud KMS without deploying a stack)."""
        crypto_key = (f"projects/{self.project}/locations/global/keyRings/tests/cryptoKeys/"
                      f"key-{len(self.crypto_keys) + 1}")
        purpose, make = _GCP_ALGORITHMS[algorithm]
        self.crypto_keys[crypto_key] = {"versions": 1, "inputs": {}, "purpose": purpose,
                                        "algorithm": algorithm, "level": protection_level}
        name = f"{crypto_key}/cryptoKeyVersions/1"
        self.versions[name] = GcpVersion(name, algorithm, protection_level, make())
        return name

    def sign(self, version_name: str, message: bytes) -> bytes:
        """AsymmetricSign: DER for ECDSA, as Cloud KMS returns it; raw for Ed25519; RSA PKCS#1 v1.5 / PSS."""
        version = self.versions[version_name]
        if version.state != "ENABLED":
            raise CloudError(f"FAILED_PRECONDITION: {version_name} is not enabled.")
        key = version.key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        hashed = hashes.Hash(_DIGESTS[version.algorithm[-3:]]())
        hashed.update(message)
        signature = self._sign_digest(version, hashed.finalize())
        assert signature is not None
        return signature

    def apply_deletes(self, before: dict, run) -> None:
        for op, urn in run.operations:
            if op == "delete" and urn in before and before[urn].type == GCP_KEY_VERSION:
                self.versions[before[urn].id].state = "DESTROY_SCHEDULED"


def _gcp_error(code: int, status: str, message: str) -> tuple[int, dict]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def _rest_handler(gcp: GcpKms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            status, answer = gcp.rest(self.command, url.path, parse_qs(url.query), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *_args) -> None:
            return None

    return Handler


# ---------------------------------------------------------------------------------------------
# Both clouds behind one Engine


def refused_before_registering(project_dir, config: dict, where: str, message: str) -> Engine:
    """An `up` of ``config`` fails with the stack file's error at ``where`` before any resource is
    registered; the engine, for the caller to look at what it holds."""
    engine = Engine(project_dir, "test", config=config)
    with pytest.raises(ProgramFailed) as failed:
        engine.up()
    text = str(failed.value)
    assert "Pulumi.test.yaml" in text
    assert f"{where}: " in text and message in text
    assert failed.value.run.resources == {}
    return engine


class Clouds:
    """`handlers` and `invoke` for an Engine over both clouds, and Engines wired to them."""

    def __init__(self, servers: Servers, *, region: str = REGION, gcp_project: str = GCP_PROJECT):
        self.servers = servers
        self.aws = AwsKms(servers, region)
        self.gcp = GcpKms(gcp_project)

    @property
    def handlers(self) -> dict:
        return {**self.aws.handlers, **self.gcp.handlers}

    def invoke(self, token: str, args: dict) -> dict:
        if token == AWS_GET_PUBLIC_KEY:
            return self.aws.get_public_key(args)
        if token == GCP_GET_KEY_VERSION:
            return self.gcp.get_key_version(args)
        raise CloudError(f"no emulator answers invoke {token!r}")

    def engine(self, project_dir, stack: str, *, config: dict | None = None) -> CloudEngine:
        return CloudEngine(self, project_dir, stack, config=config)


class CloudEngine(Engine):
    """An Engine whose runs see the clouds: provider handlers and invokes, the publisher's clients
    pointed at the servers, the stack's buckets, and the providers' deletes after each run."""

    def __init__(self, clouds: Clouds, project_dir, stack: str, *, config: dict | None = None):
        super().__init__(project_dir, stack, config=config, handlers=clouds.handlers, invoke=clouds.invoke)
        self.clouds = clouds

    def _run(self, kind: str):
        servers = self.clouds.servers
        with environment({**servers.environment, "CLOUDKMS_EMULATOR_HOST": self.clouds.gcp.endpoint}):
            config = self.config
            if config is None:
                stack_file = self.project_dir / f"Pulumi.{self.stack}.yaml"
                config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
            servers.create_buckets(config)
            before = self.resources
            run = super()._run(kind)
        if kind != "preview":
            self.clouds.aws.apply_deletes(before, run)
            self.clouds.gcp.apply_deletes(before, run)
        return run
