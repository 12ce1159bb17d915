"""Outputs. `findings.json` is the evidence; every other format renders from it alone."""
