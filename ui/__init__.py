"""Streamlit glue shared by the pages: process-wide resources and small composite widgets.
Everything that computes lives in ``aod_core``; this package only binds it to Streamlit."""
