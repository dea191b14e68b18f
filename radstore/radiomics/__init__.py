"""Handcrafted radiomics: PyRadiomics-compatible, IBSI-consistent, batched torch kernels."""
