"""I/O adapters: the only modules that touch files and formats."""
