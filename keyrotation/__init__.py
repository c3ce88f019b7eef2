"""Key rotation as code: the pure domain (no Pulumi import).

``config`` (the stack file contract: model, rules, problems, loading), ``view`` (one view of a
keyset), ``algorithms`` (the tables of algorithms, purposes, backends, profiles), ``lifecycle``
(states, revoke reasons, timings, ages, the gap check), ``keys`` (key material and JWK
encoding), ``documents`` (JWKS, signers, trust anchor, key history), ``delivery`` (what a keyset
delivers to Kubernetes) and ``errors`` (the one base of the project's errors).

The rotation commands (``python -m keyrotation``, ``key-rotation``) are the subpackage
:mod:`keyrotation.commands`, on top of the domain; nothing here imports them.
"""
