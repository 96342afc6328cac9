"""Stage 5, the only stage that touches the output disk: atomic writes and the manifest
(outputs.py), and which files `docker compose` reads in a folder (composefiles.py)."""
