"""Evaluation: the exact batch metrics, the registered Data Auditor suite (validity, novelty,
diversity, fidelity, distance) and the offline sentence embedder they share."""
