"""`key-rotation audit`: the git history of a stack file as seed 002's audit log.

A real temporary git repository; every commit is made by a rotation command (or, for the cases an
auditor must see, a hand edit), under its own author and date (GIT_AUTHOR_NAME/DATE). The events
are then read back through the command, as JSON Lines, a table, a ledger and `--json`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyrotation.commands.audit import (
    ANCHOR_FROM_KEYSET,
    ANCHOR_FROM_TRUST_ANCHOR,
    ANCHOR_FROM_TRUST_ANCHORS,
)
from keyrotation.commands.cli import main
from tests.json_schemas import validate
from tests.project import ROOT

STACK = """\
config:
  key-rotation:environment: t
  key-rotation:keysets:
    gw:
      purpose: sign
      algorithm: ES256
      backend: software
      kid: "gw-{generation}"
      publish:
        - {format: jwks, target: "file://published/gw/jwks.json"}
      generations:
        - {id: g1, state: active, createdAt: "2026-10-01T09:00:00Z", activatedAt: "2026-10-01T09:10:00Z"}
    hsm:
      purpose: sign
      algorithm: ES256
      backend: external
      kid: "hsm-{generation}"
      publish:
        - {format: trust-anchor, target: "file://published/hsm/trust-anchor.json"}
      generations:
        - id: h1
          state: active
          createdAt: "2026-10-01T09:00:00Z"
          activatedAt: "2026-10-01T09:10:00Z"
          publicKeyPem: |
%s
"""


def public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def spki_sha256(pem: str) -> str:
    der = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


class Repo:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        (root / "Pulumi.yaml").write_text("name: key-rotation\nruntime: python\n")
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, author: str = "Setup", date: str = "2026-10-01T10:00:00Z") -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author.lower()}@example.com",
               "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_NAME": author,
               "GIT_COMMITTER_EMAIL": f"{author.lower()}@example.com", "GIT_COMMITTER_DATE": date,
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root)}
        return subprocess.run(["git", *args], cwd=self.root, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, author: str, date: str, message: str) -> str:
        self.git("add", "-A", author=author, date=date)
        self.git("commit", "-q", "-m", message, author=author, date=date)
        return self.git("rev-parse", "HEAD")

    def command(self, stack_file: str, *args: str, now: str) -> None:
        out, err = io.StringIO(), io.StringIO()
        code = main([*args, "--file", str(self.root / stack_file), "--now", now, "--no-outputs",
                     "--project-dir", str(self.root)], out=out, err=err)
        assert code == 0, err.getvalue()

    def audit(self, *args: str, stack_file: str = "Pulumi.prod.yaml",
              outputs: Path | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        source = ["--outputs", str(outputs)] if outputs is not None else ["--no-outputs"]
        code = main(["audit", "--file", str(self.root / stack_file), *source, *args], out=out, err=err)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def history(tmp_path):
    """alice adds the stack, bob rotates, carol promotes, dave renames the file, erin rolls back,
    frank revokes, then mallory rewrites a recorded time; the hsm keyset rotates with a public key."""
    repo = Repo(tmp_path / "repo")
    repo.commit("Setup", "2026-09-01T10:00:00Z", "Start the project (no stack file yet)")
    first, second = public_pem(), public_pem()
    (repo.root / "Pulumi.t.yaml").write_text(
        STACK % "\n".join("            " + line for line in first.splitlines()))
    commits = {"add": repo.commit("Alice", "2026-10-01T10:00:00Z", "Add the stack")}
    repo.command("Pulumi.t.yaml", "rotate", "gw", "--id", "g2", now="2026-11-01T09:00:00Z")
    commits["rotate"] = repo.commit("Bob", "2026-11-01T09:05:00Z", "Rotate gw")
    repo.command("Pulumi.t.yaml", "promote", "gw", "--force", now="2026-11-01T10:00:00Z")
    (repo.root / "hsm.pem").write_text(second)
    repo.command("Pulumi.t.yaml", "rotate", "hsm", "--id", "h2", "--public-key", str(repo.root / "hsm.pem"),
                 now="2026-11-01T10:00:00Z")
    (repo.root / "hsm.pem").unlink()
    commits["promote"] = repo.commit("Carol", "2026-11-01T10:05:00Z", "Promote gw; rotate hsm")
    repo.git("mv", "Pulumi.t.yaml", "Pulumi.prod.yaml")
    commits["rename"] = repo.commit("Dave", "2026-11-02T08:00:00Z", "Rename the stack")
    repo.command("Pulumi.prod.yaml", "rollback", "gw", "--force", now="2026-11-02T09:00:00Z")
    commits["rollback"] = repo.commit("Erin", "2026-11-02T09:05:00Z", "Roll back gw")
    repo.command("Pulumi.prod.yaml", "revoke", "gw", "g2", "--reason", "compromise",
                 now="2026-11-02T10:00:00Z")
    commits["revoke"] = repo.commit("Frank", "2026-11-02T10:05:00Z", "Revoke g2")
    path = repo.root / "Pulumi.prod.yaml"
    path.write_text(path.read_text().replace('activatedAt: "2026-10-01T09:10:00Z"',
                                             'activatedAt: "2026-10-01T09:20:00Z"', 1))
    commits["rewrite"] = repo.commit("Mallory", "2026-11-03T09:00:00Z", "Tidy up")
    return repo, commits, first, second


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_one_event_per_lifecycle_change_with_author_recorded_time_and_commit(history):
    repo, commits, first, second = history
    code, out, err = repo.audit()
    assert code == 0, err
    events = lines(out)
    seen = [(e["event_type"], e["key_id"], e["actor"].split(" <")[0], e["timestamp"], e["details"]["commit"])
            for e in events]
    c = commits
    assert seen == [
        ("KEY_GENERATED", "gw-g1", "Alice", "2026-10-01T09:00:00Z", c["add"]),
        ("KEY_ADDED", "gw-g1", "Alice", "2026-10-01T09:00:00Z", c["add"]),
        ("KEY_ACTIVATED", "gw-g1", "Alice", "2026-10-01T09:10:00Z", c["add"]),
        ("KEY_GENERATED", "hsm-h1", "Alice", "2026-10-01T09:00:00Z", c["add"]),
        ("KEY_ADDED", "hsm-h1", "Alice", "2026-10-01T09:00:00Z", c["add"]),
        ("KEY_ACTIVATED", "hsm-h1", "Alice", "2026-10-01T09:10:00Z", c["add"]),
        ("KEY_GENERATED", "gw-g2", "Bob", "2026-11-01T09:00:00Z", c["rotate"]),
        ("KEY_ADDED", "gw-g2", "Bob", "2026-11-01T09:00:00Z", c["rotate"]),
        ("KEY_RETIRING", "gw-g1", "Carol", "2026-11-01T10:00:00Z", c["promote"]),
        ("KEY_ACTIVATED", "gw-g2", "Carol", "2026-11-01T10:00:00Z", c["promote"]),
        ("KEY_GENERATED", "hsm-h2", "Carol", "2026-11-01T10:00:00Z", c["promote"]),
        ("KEY_ADDED", "hsm-h2", "Carol", "2026-11-01T10:00:00Z", c["promote"]),
        # the rename changed nothing recorded: no event; the history is followed across it
        ("KEY_REACTIVATED", "gw-g1", "Erin", "2026-11-02T09:00:00Z", c["rollback"]),
        ("KEY_RETIRING", "gw-g2", "Erin", "2026-11-02T09:00:00Z", c["rollback"]),
        ("KEY_REVOKED", "gw-g2", "Frank", "2026-11-02T10:00:00Z", c["revoke"]),
        ("HISTORY_REWRITTEN", "gw-g1", "Mallory", None, c["rewrite"]),
    ]
    by_type = {(e["event_type"], e["key_id"]): e for e in events}
    generated = by_type[("KEY_GENERATED", "gw-g2")]
    # no trust anchor in this stack file: the keyset stands for the anchor, and the event says so
    assert generated["anchor_id"] == "gw" and generated["details"]["anchors"] == []
    assert generated["details"]["anchor_id_source"] == ANCHOR_FROM_KEYSET
    assert generated["details"]["keyset"] == "gw"
    assert generated["details"]["targets"] == ["file://published/gw/jwks.json"]
    assert generated["actor"] == "Bob <bob@example.com>"
    assert generated["details"]["commit_date"] == "2026-11-01T09:05:00Z"
    assert generated["details"]["stack_file"] == "Pulumi.t.yaml"
    assert by_type[("KEY_REACTIVATED", "gw-g1")]["details"]["stack_file"] == "Pulumi.prod.yaml"
    assert by_type[("KEY_REVOKED", "gw-g2")]["details"]["reason"] == "compromise"
    # the generation's fingerprint where the public key is in the file (SPKI SHA-256, computed here
    # independently)
    assert by_type[("KEY_GENERATED", "hsm-h1")]["details"]["fingerprint"] == spki_sha256(first)
    assert by_type[("KEY_ADDED", "hsm-h2")]["details"]["fingerprint"] == spki_sha256(second)
    assert generated["details"]["fingerprint"] is None
    rewrite = by_type[("HISTORY_REWRITTEN", "gw-g1")]
    assert rewrite["details"]["flags"] == ["rewrites-recorded-history"]
    assert {"state": "active", "at": "2026-10-01T09:10:00Z"} in rewrite["details"]["before"]
    assert {"state": "active", "at": "2026-10-01T09:20:00Z"} in rewrite["details"]["after"]
    # ids are UUIDs, unique, and the same on every read of the same history
    assert len({e["event_id"] for e in events}) == len(events)
    assert lines(repo.audit()[1]) == events


def test_since_until_table_ledger_and_json(history):
    repo, commits, first, second = history
    _, out, _ = repo.audit("--since", "2026-11-01T10:00:00Z", "--until", "2026-11-02T09:00:00Z")
    assert [(e["event_type"], e["key_id"]) for e in lines(out)] == [
        ("KEY_RETIRING", "gw-g1"), ("KEY_ACTIVATED", "gw-g2"), ("KEY_GENERATED", "hsm-h2"),
        ("KEY_ADDED", "hsm-h2"), ("KEY_REACTIVATED", "gw-g1"), ("KEY_RETIRING", "gw-g2")]

    _, table, _ = repo.audit("--table")
    rows = table.splitlines()
    assert rows[0].split() == ["TIMESTAMP", "EVENT", "KEY", "ID", "ANCHOR", "ACTOR", "COMMIT", "FLAGS"]
    assert any("KEY_REVOKED" in r and "gw-g2" in r and commits["revoke"][:10] in r for r in rows)
    assert any("HISTORY_REWRITTEN" in r and "rewrites-recorded-history" in r for r in rows)

    _, ledger, _ = repo.audit("--ledger")
    assert [(r["timestamp"], r["operator"], r["key_id"], r["key_fingerprint"]) for r in lines(ledger)] == [
        ("2026-10-01T09:10:00Z", "Alice <alice@example.com>", "gw-g1", None),
        ("2026-10-01T09:10:00Z", "Alice <alice@example.com>", "hsm-h1", spki_sha256(first)),
        ("2026-11-01T10:00:00Z", "Carol <carol@example.com>", "gw-g2", None),
        ("2026-11-02T09:00:00Z", "Erin <erin@example.com>", "gw-g1", None),
    ]

    code, text, _ = repo.audit("--json")
    data = json.loads(text)
    validate(data, "audit")
    assert data["exitCode"] == code == 0
    assert Path(data["file"]).is_absolute() and Path(data["repository"]).is_absolute()
    assert data["flagged"] == 1 and len(data["events"]) == 16
    _, text, _ = repo.audit("--json", "--ledger")
    validate(json.loads(text), "audit")


def test_a_backdated_change_an_invalid_version_and_a_deleted_file_are_flagged(tmp_path):
    repo = Repo(tmp_path / "repo")
    (repo.root / "Pulumi.prod.yaml").write_text(
        STACK % "\n".join("            " + line for line in public_pem().splitlines()))
    repo.commit("Alice", "2026-10-02T10:00:00Z", "Add")
    path = repo.root / "Pulumi.prod.yaml"
    text = path.read_text()
    path.write_text(text.replace("state: active", "state: actve", 1))
    invalid = repo.commit("Bob", "2026-10-03T10:00:00Z", "Typo")
    # A generation recorded as added before the previous commit existed: backdated.
    g1_line = ('        - {id: g1, state: active, createdAt: "2026-10-01T09:00:00Z",'
               ' activatedAt: "2026-10-01T09:10:00Z"}\n')
    path.write_text(text.replace(
        g1_line, g1_line + '        - {id: g0, state: pending, createdAt: "2026-10-01T12:00:00Z"}\n'))
    repo.commit("Carol", "2026-10-04T10:00:00Z", "Fix, and add a generation")
    path.unlink()
    repo.commit("Dave", "2026-10-05T10:00:00Z", "Remove the stack")
    code, out, err = repo.audit()
    assert code == 0, err
    events = lines(out)
    invalid_event = next(e for e in events if e["event_type"] == "STACK_FILE_INVALID")
    assert invalid_event["details"]["commit"] == invalid and invalid_event["actor"].startswith("Bob")
    assert any("actve" in p for p in invalid_event["details"]["problems"])
    # Carol's version is diffed against the last valid one (Alice's): only g0 is new.
    carol = [(e["event_type"], e["key_id"], e["details"].get("flags"))
             for e in events if e["actor"].startswith("Carol")]
    assert carol == [("KEY_GENERATED", "gw-g0", ["backdated"]), ("KEY_ADDED", "gw-g0", ["backdated"])]
    assert events[-1]["event_type"] == "STACK_FILE_DELETED" and events[-1]["actor"].startswith("Dave")


def test_outside_a_git_repository_or_before_a_commit_the_error_says_so(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "Pulumi.prod.yaml").write_text("config: {}\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["audit", "--file", str(plain / "Pulumi.prod.yaml")], out=out, err=err) == 1
    message = err.getvalue().strip()
    assert (message.startswith("error: ") and "is not in a git repository" in message
            and "Traceback" not in message)
    assert len(message.splitlines()) == 1
    repo = Repo(tmp_path / "repo")
    (repo.root / "Pulumi.prod.yaml").write_text("config: {}\n")
    repo.commit("Alice", "2026-10-02T10:00:00Z", "Add")
    (repo.root / "Pulumi.new.yaml").write_text("config: {}\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["audit", "--file", str(repo.root / "Pulumi.new.yaml")], out=out, err=err) == 1
    assert "no commit" in err.getvalue() and "Pulumi.new.yaml" in err.getvalue()


def test_the_module_runs_as_python_m_keyrotation_audit(history):
    repo, *_ = history
    done = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "keyrotation", "audit", "--stack", "prod",
                           "--no-outputs", "--ledger"], cwd=repo.root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4


def test_the_fingerprint_is_the_sha256_of_the_spki_der():
    """The fingerprint is the SPKI DER's SHA-256, what `openssl pkey -pubin -outform DER | sha256sum`
    prints."""
    from keyrotation.commands.audit import fingerprint

    pem = public_pem()
    der = base64.b64decode("".join(pem.strip().splitlines()[1:-1]))
    assert fingerprint(pem) == "sha256:" + hashlib.sha256(der).hexdigest() == spki_sha256(pem)


NPM, MAVEN = "550e8400-e29b-41d4-a716-446655440000", "660f9500-f39c-51e5-b827-557766551111"

ANCHORED = """\
config:
  key-rotation:environment: t
  key-rotation:keysets:
    npm:
      purpose: sign
      algorithm: ES256
      backend: software
      kid: "npm-{generation}"
      publish:
        - {format: jwks, target: "file://published/npm/jwks.json"}
      generations:
        - {id: n1, state: active, createdAt: "2026-10-01T09:00:00Z", activatedAt: "2026-10-01T09:10:00Z"}
    shared:
      purpose: sign
      algorithm: ES256
      backend: software
      kid: "sha256:{thumbprint}"
      publish:
        - {format: jwks, target: "file://published/shared/jwks.json"}
      generations:
        - {id: s1, state: active, createdAt: "2026-10-01T09:00:00Z", activatedAt: "2026-10-01T09:10:00Z"}
    lonely:
      purpose: sign
      algorithm: ES256
      backend: software
      kid: "lonely-{generation}"
      publish:
        - {format: jwks, target: "file://published/lonely/jwks.json"}
      generations:
        - {id: l1, state: active, createdAt: "2026-10-01T09:00:00Z", activatedAt: "2026-10-01T09:10:00Z"}
"""

TRUST_ANCHORS = f"""\
  key-rotation:trustAnchors:
    - trustAnchorId: {NPM}
      purlPattern: "pkg:npm/*"
      keysets: [npm, shared]
      allowedPredicateTypes: [evidence.stella/v1]
      policyVersion: v2.3.1
      target: "file://published/anchors/npm.json"
    - trustAnchorId: {MAVEN}
      purlPattern: "pkg:maven/*"
      keysets: [shared]
      allowedPredicateTypes: [evidence.stella/v1]
      policyVersion: v2.3.1
      target: "file://published/anchors/maven.json"
"""


def rfc7638(pem: str) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC public key, from PyJWT's JWK (not the project's code):
    the required members crv, kty, x, y in lexicographic order, no whitespace."""
    from jwt.algorithms import ECAlgorithm

    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    canonical = json.dumps({m: jwk[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def anchored(tmp_path):
    """Alice adds three keysets and no trust anchor; Bob adds two anchors (npm: npm and shared;
    maven: shared; lonely in none), then Carol rotates all three keysets."""
    repo = Repo(tmp_path / "repo")
    path = repo.root / "Pulumi.prod.yaml"
    path.write_text(ANCHORED)
    commits = {"add": repo.commit("Alice", "2026-10-01T10:00:00Z", "Add the stack")}
    path.write_text(ANCHORED + TRUST_ANCHORS)
    commits["anchors"] = repo.commit("Bob", "2026-10-02T10:00:00Z", "Add the trust anchors")
    for name, gid in (("npm", "n2"), ("shared", "s2"), ("lonely", "l2")):
        repo.command("Pulumi.prod.yaml", "rotate", name, "--id", gid, now="2026-11-01T09:00:00Z")
    commits["rotate"] = repo.commit("Carol", "2026-11-01T09:05:00Z", "Rotate every keyset")
    return repo, commits


def test_each_event_names_the_trust_anchors_its_keyset_is_in_at_that_commit(anchored):
    repo, commits = anchored
    code, out, err = repo.audit()
    assert code == 0, err
    events = lines(out)
    seen = [(e["details"]["commit"], e["event_type"], e["details"]["keyset"], e["anchor_id"],
             e["details"]["anchors"], e["details"]["anchor_id_source"]) for e in events]
    none: tuple[list[str], str] = ([], ANCHOR_FROM_KEYSET)  # details.anchors, anchor_id_source
    one, several = ([NPM], ANCHOR_FROM_TRUST_ANCHOR), (None, [NPM, MAVEN], ANCHOR_FROM_TRUST_ANCHORS)
    add, rotate = commits["add"], commits["rotate"]
    assert seen == [
        # Alice's version has no trust anchor: every event names its keyset, and says so
        *[(add, t, name, name, *none) for name in ("npm", "shared", "lonely")
          for t in ("KEY_GENERATED", "KEY_ADDED", "KEY_ACTIVATED")],
        # Bob's commit adds anchors and changes no key: no event
        (rotate, "KEY_GENERATED", "npm", NPM, *one), (rotate, "KEY_ADDED", "npm", NPM, *one),
        (rotate, "KEY_GENERATED", "shared", *several), (rotate, "KEY_ADDED", "shared", *several),
        (rotate, "KEY_GENERATED", "lonely", "lonely", *none),
        (rotate, "KEY_ADDED", "lonely", "lonely", *none),
    ]
    assert all(e["details"]["targets"] == [f"file://published/{e['details']['keyset']}/jwks.json"]
               for e in events)

    _, table, _ = repo.audit("--table")
    rows = table.splitlines()
    assert any("KEY_ADDED" in r and "npm-n2" in r and f" {NPM} " in r for r in rows)
    # several anchors: the table lists them all where the JSON's anchor_id is null
    assert any("KEY_ADDED" in r and f"{NPM},{MAVEN}" in r for r in rows)
    assert any("KEY_ADDED" in r and "lonely-l2" in r and " lonely " in r for r in rows)

    code, text, _ = repo.audit("--json")
    data = json.loads(text)
    validate(data, "audit")
    assert [e["anchor_id"] for e in data["events"]] == [e["anchor_id"] for e in events]


def test_the_anchor_id_sources_are_the_schemas():
    schema = json.loads((ROOT / "schemas/audit.schema.json").read_text())
    details = schema["$defs"]["event"]["properties"]["details"]["properties"]
    assert details["anchor_id_source"]["enum"] == [
        ANCHOR_FROM_TRUST_ANCHOR, ANCHOR_FROM_TRUST_ANCHORS, ANCHOR_FROM_KEYSET]


def test_a_thumbprint_template_kid_gives_the_keys_thumbprint_as_fingerprint(anchored, tmp_path):
    """`kid: "sha256:{thumbprint}"`: the fingerprint is the key's RFC 7638 thumbprint (not the
    rendered kid), in the events and in the ledger."""
    repo, commits = anchored
    path = repo.root / "Pulumi.prod.yaml"
    for name in ("npm", "shared", "lonely"):
        repo.command("Pulumi.prod.yaml", "promote", name, "--force", now="2026-11-01T10:00:00Z")
    repo.commit("Dave", "2026-11-01T10:05:00Z", "Promote every keyset")
    assert "sha256:{thumbprint}" in path.read_text()
    pems = {"s1": public_pem(), "s2": public_pem()}
    thumbprints = {gid: rfc7638(pem) for gid, pem in pems.items()}
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"keysets": {"shared": {"generations": [
        {"id": "s1", "kid": f"sha256:{thumbprints['s1']}", "state": "retiring"},
        {"id": "s2", "kid": f"sha256:{thumbprints['s2']}", "state": "active"},
    ]}}}))
    code, out, err = repo.audit(outputs=outputs)
    assert code == 0, err
    shared = [e for e in lines(out) if e["details"].get("keyset") == "shared"]
    assert {(e["details"]["generation"], e["key_id"], e["details"]["fingerprint"]) for e in shared} == {
        ("s1", f"sha256:{thumbprints['s1']}", f"jwk-thumbprint:{thumbprints['s1']}"),
        ("s2", f"sha256:{thumbprints['s2']}", f"jwk-thumbprint:{thumbprints['s2']}"),
    }
    assert all(e["details"]["fingerprint_source"] == str(outputs) for e in shared)
    # a keyset whose kid carries no thumbprint still has no fingerprint without a public key
    assert all(e["details"]["fingerprint"] is None for e in lines(out) if e["details"].get("keyset") == "npm")

    _, ledger, _ = repo.audit("--ledger", outputs=outputs)
    rows = [(r["keyset"], r["generation"], r["key_fingerprint"], r["anchor_id"], r["anchors"])
            for r in lines(ledger)]
    assert ("shared", "s1", f"jwk-thumbprint:{thumbprints['s1']}", "shared", []) in rows  # before the anchors
    assert ("shared", "s2", f"jwk-thumbprint:{thumbprints['s2']}", None, [NPM, MAVEN]) in rows
    assert ("npm", "n2", None, NPM, [NPM]) in rows
    _, table, _ = repo.audit("--ledger", "--table", outputs=outputs)
    assert any(f"jwk-thumbprint:{thumbprints['s2']}" in r and f"{NPM},{MAVEN}" in r
               for r in table.splitlines())
    for view in ((), ("--ledger",)):
        _, text, _ = repo.audit("--json", *view, outputs=outputs)
        validate(json.loads(text), "audit")


def test_the_thumbprint_is_read_back_from_a_kid_only_where_the_template_puts_it():
    from keyrotation.keys import render_kid, thumbprint_in_kid
    from keyrotation.keys import thumbprint as project_thumbprint

    pem = public_pem()
    thumbprint = rfc7638(pem)
    assert project_thumbprint(pem) == thumbprint  # what the program puts in a deployed kid
    names = {"keyset": "k", "generation": "g1", "environment": "prod"}
    templates = ("thumbprint", "{thumbprint}", "sha256:{thumbprint}", "{environment}.{keyset}.{thumbprint}")
    for template in templates:
        kid = render_kid(template, thumbprint=thumbprint, **names)
        assert thumbprint_in_kid(template, kid, **names) == thumbprint
    assert thumbprint_in_kid("sha256:{thumbprint}", thumbprint, **names) is None  # the prefix is missing
    assert thumbprint_in_kid("{keyset}.{thumbprint}", f"other.{thumbprint}", **names) is None
    assert thumbprint_in_kid("{keyset}-{generation}", "k-g1", **names) is None  # no thumbprint in it


def test_a_removed_keyset_names_the_anchors_it_was_in_before_the_commit(anchored):
    repo, _ = anchored
    path = repo.root / "Pulumi.prod.yaml"
    text = path.read_text()
    start, end = text.index("    npm:\n"), text.index("    shared:\n")
    path.write_text((text[:start] + text[end:]).replace("keysets: [npm, shared]", "keysets: [shared]"))
    removal = repo.commit("Mallory", "2026-11-05T09:00:00Z", "Drop npm")
    code, out, err = repo.audit()
    assert code == 0, err
    removed = [e for e in lines(out) if e["details"]["commit"] == removal]
    assert [(e["event_type"], e["anchor_id"], e["details"]["keyset"], e["details"]["anchors"],
             e["details"]["flags"]) for e in removed] == [
        ("HISTORY_REWRITTEN", NPM, "npm", [NPM], ["keyset-removed"])]
    _, text, _ = repo.audit("--json")
    validate(json.loads(text), "audit")
