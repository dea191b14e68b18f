"""radstore: a distributed feature store for CT deep-learning radiomics.

The library holds pure kernels (``preprocess``, ``radiomics``, ``deep``, ``stats``) and the I/O
adapters (``io``); orchestration lives in the ``pipelines`` package.
"""

__version__ = "0.1.0"
