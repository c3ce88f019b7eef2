"""Key rotation as code: the pure domain (no Pulumi import).

``config`` (the stack file contract), ``algorithms`` (the one algorithm table), ``lifecycle``
(states, timings, ages, the gap check), ``keys`` (key material and JWK encoding) and
``documents`` (JWKS, signers, trust anchor, key history).

The rotation commands (``python -m keyrotation``, ``key-rotation``) sit on top: ``cli`` (the
command line), ``commands`` (the transitions), ``schedule`` (status, plan, valid-at),
``timeline`` (SVG and Mermaid), ``stackfile`` (minimal verified edits of the stack file) and
``outputs`` (the publisher's record from the stack outputs).
"""
