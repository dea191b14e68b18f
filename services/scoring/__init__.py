"""Scoring service: the champion model from the MLflow registry, features from Feast online."""
