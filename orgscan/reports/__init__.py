"""Outputs. `findings.json` is the evidence (its codec is `orgscan.evidence`); every other
format renders from it alone.

One renderer per format (`interface.Renderer`): `html`, `sarif`, `csv`, `ocsf`, `asff` and
`oscal`, with `writer` writing the package and `manifest` listing and verifying it. `view` holds
the facts that several formats show (a user's state, a control's status); `summary` is the
CLI's text. The rule's metadata and the key to keep are `orgscan.rules`'; the format names are
`orgscan.formats`'.
"""
