"""The command line: one module per command group, shared options and output in one place."""
