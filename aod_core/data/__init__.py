"""Data in and out: JSON Schema loading (drafts, allOf, $ref), seed/holdout readers, input limits, the demo datasets, export."""
