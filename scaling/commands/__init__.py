"""One module per ``python -m scaling`` command; see `scaling.cli`."""
