"""radstore: a distributed feature store for CT deep-learning radiomics.

The library holds pure kernels (``preprocess``, ``radiomics``, ``deep``, ``stats``) and the I/O
adapters (``io``); orchestration lives in the ``pipelines`` package.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Lazy exports: ``radstore.sql(query)`` (a callable module) and ``radstore.sql_df(query)``."""
    if name in ("sql", "sql_df"):
        import importlib

        mod = importlib.import_module("radstore.sql")
        return mod if name == "sql" else mod.sql_df
    raise AttributeError(f"module 'radstore' has no attribute {name!r}")
