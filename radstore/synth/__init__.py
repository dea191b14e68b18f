"""Synthetic multi-hospital abdominal CT cohort with a planted, documented outcome signal.

``generate(out_dir, SynthConfig(...))`` writes one folder per hospital in the "Cohort input"
contract of ``docs/architecture.md`` (``manifest.csv``, ``clinical.csv``, ``outcomes.csv``,
``cohort.yaml``) and keeps the truth apart in ``out_dir/_truth/``. Hospitals differ in scanner
(spacing, slice thickness, noise, HU offset, kernel), storage format (DICOM + RTSTRUCT; DICOM +
NIfTI masks; NIfTI/NRRD) and case mix, and share one true model:

    eta = 1.0 z_het + 0.6 z_size + 0.5 [G2] + 1.1 [G3] + 0.8 m_stage + 0.3 log(ki67 / 5)

where ``z_het`` drives the lesion texture amplitude ``A = 16 exp(0.55 z_het)`` HU (and a necrotic
core) and ``z_size`` the index-lesion radius ``R exp(0.35 z_size)``. Survival times are Weibull
proportional hazards in ``eta`` with administrative and random censoring; ``response`` is logistic
in ``z_het``, ``z_size``, M stage and grade 3. The full formulas are in
:mod:`radstore.synth.cohort`, the image model in :mod:`radstore.synth.phantom`.
"""

from radstore.synth.config import SCANNER_PROFILES, ScannerProfile, SynthConfig, scanner_profile
from radstore.synth.generate import (
    CLINICAL_COLUMNS,
    MANIFEST_COLUMNS,
    OUTCOME_COLUMNS,
    CohortSummary,
    SynthResult,
    generate,
)

__all__ = [
    "CLINICAL_COLUMNS",
    "MANIFEST_COLUMNS",
    "OUTCOME_COLUMNS",
    "SCANNER_PROFILES",
    "CohortSummary",
    "ScannerProfile",
    "SynthConfig",
    "SynthResult",
    "generate",
    "scanner_profile",
]
