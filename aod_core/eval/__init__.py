"""Evaluation: exact batch metrics, the Data Auditor suite, the offline sentence embedder they share."""
