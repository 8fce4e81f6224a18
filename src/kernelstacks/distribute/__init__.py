"""Stage 4: a built stack leaves the build directory — archives, publish, export, deploy."""
