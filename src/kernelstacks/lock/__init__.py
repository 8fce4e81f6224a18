"""Stage 2: locking layers into venvstacks-compatible pylock files and their metadata."""
