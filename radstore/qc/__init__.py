"""Ingest QC: a self-contained HTML report per cohort (thumbnails, distributions, rejections)."""
