"""Finding and inspecting Python interpreters: what runtimes are made from, what uv locks with."""
