"""UI-free services behind the app's pages: datasets, prompt forms, sampling, run views and background jobs."""
