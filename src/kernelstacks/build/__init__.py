"""Stage 3: building layers — relocatable runtimes, chained venv layers, native libraries."""
