"""Safe remediation: deactivate, never delete, the extra keys; a plan, a journal, a rollback."""
