"""Outputs. `findings.json` is the evidence; every other format renders from it alone.

One renderer per format (`interface.Renderer`): `html`, `sarif`, `csv`, with `writer` writing
the package and `manifest` listing and verifying it. `view` holds the facts that several
formats show (the key to keep, a control's status); `rule` loads the rule's metadata.
"""
