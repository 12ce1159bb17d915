"""Between sweeps: one CloudTrail key event, the user's keys read live, the sweep's rule applied."""
