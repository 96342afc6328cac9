"""One module per CLI command; see omnigen.cli."""
