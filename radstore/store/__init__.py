"""The feature store's read side: feature-table discovery, point-in-time joins, SQL views, and
the Feast objects generated from the tables. Nothing here imports Feast at module level except
:mod:`radstore.store.feast_defs`."""
