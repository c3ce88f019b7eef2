"""The rotation commands (``python -m keyrotation``, ``key-rotation``): the application on the domain.

``cli`` (the command line), ``transitions`` (rotate, promote, retire, revoke, rollback, rewrapped,
restore, destroy: each a verified edit of the stack file), ``records`` (what a deployment recorded:
first publications, switches), ``schedule`` (status, plan, valid-at), ``timeline`` (SVG and Mermaid),
``stackfile`` (minimal verified edits of the stack file) and ``outputs`` (the publisher's record from
the stack outputs). Nothing here imports Pulumi; nothing in the domain imports this package.
"""
