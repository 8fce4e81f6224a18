"""Stage 1: the stack file — its keys, validation, the validated model and edits."""
