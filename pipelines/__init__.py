"""Pipeline stages (orchestration only): ingest, extract, register, assemble, train, promote.

Each stage is a plain function callable on one batch without a cluster; ``pipelines.cli`` exposes
them as ``radstore <stage>``.
"""
