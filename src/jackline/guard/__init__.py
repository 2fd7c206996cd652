"""The policy outside the model: redaction of secrets, the audit log, and the agent's scope."""
