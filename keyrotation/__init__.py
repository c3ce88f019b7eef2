"""Key rotation as code: the pure domain (no Pulumi import).

``config`` (the stack file contract), ``algorithms`` (the one algorithm table), ``lifecycle``
(states, timings, ages, the gap check), ``keys`` (key material and JWK encoding) and
``documents`` (JWKS, signers, trust anchor, key history).
"""
