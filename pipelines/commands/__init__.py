"""One module per CLI command group. Each defines ``register(app)`` and imports nothing heavy at
module level (``radstore --help`` must start in well under a second)."""
