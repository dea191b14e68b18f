"""Typed configuration of the synthetic cohort: :class:`SynthConfig` and the scanner profiles.

Each hospital ``h`` (1-based) gets the profile ``SCANNER_PROFILES[(h - 1) % 3]``; hospitals beyond
the third repeat a profile with a shifted HU calibration offset and noise level, so every cohort is a
distinct "scanner" (batch effects) while all share the same true outcome model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SynthPhase = Literal["non_contrast", "arterial", "venous", "portal", "delayed"]
StorageFormat = Literal["dicom_rtstruct", "dicom_nifti", "nifti_nrrd"]

FOLLOW_UP_WEEKS: tuple[int, ...] = (12, 24, 36, 48, 72)
"""Follow-up visit weeks after baseline (seed 004: CLARINET visits at weeks 12–72)."""


class SynthConfig(BaseModel):
    """What to generate. Same config (including ``seed``) → byte-identical files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hospitals: int = Field(3, ge=1, le=12, description="number of hospitals (cohorts)")
    patients_per_hospital: int = Field(10, ge=2, le=5000)
    size: Literal["small", "full"] = Field(
        "small", description="'small': ~100 mm FOV, 20–48 slices (tests, demo); "
        "'full': 512×512×(100–300) (benchmarks)")
    seed: int = Field(0, ge=0, lt=2**32)
    visits: int = Field(1, ge=1, le=1 + len(FOLLOW_UP_WEEKS),
                        description="baseline + follow-up visits at weeks 12, 24, 36, 48, 72")
    second_reader: bool = Field(False, description="also write a second reader's mask 'gtv_r2'")
    phases: tuple[SynthPhase, ...] = Field(
        ("non_contrast", "arterial", "venous"),
        description="contrast phases; the first listed is skipped for ~30% of patients when "
        "more than two are listed (protocols without it), so patients have 2–3 phases")
    cohort_prefix: str = Field("hospital", pattern=r"^[a-z][a-z0-9_-]*$",
                               description="cohort ids are '<prefix><h>'")

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("phases: at least one phase is required")
        if len(set(v)) != len(v):
            raise ValueError(f"phases: duplicates in {list(v)}")
        return v

    def cohort_id(self, hospital: int) -> str:
        return f"{self.cohort_prefix}{hospital}"


@dataclass(frozen=True)
class ScannerProfile:
    """One hospital's scanner, reconstruction, storage format and case mix."""

    institution: str
    manufacturer: str
    model: str
    kvp: float
    kernel: str
    pixel_spacing: float
    slice_thickness: float
    slice_spacing: float
    noise_hu: float
    kernel_blur_px: float
    hu_offset: float
    storage: StorageFormat
    signed_pixels: bool
    series_descriptions: dict[str, str]
    patient_id_prefix: str
    p_m1: float
    grade_probs: tuple[float, float, float]
    z_het_shift: float
    z_size_shift: float
    site_probs: tuple[float, float, float, float]

    def scanner_tags(self) -> dict[str, object]:
        """Descriptive, non-PHI scanner tags for ``cohort.yaml``."""
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "kvp": self.kvp,
            "kernel": self.kernel,
            "pixel_spacing_mm": self.pixel_spacing,
            "slice_thickness_mm": self.slice_thickness,
            "slice_spacing_mm": self.slice_spacing,
            "format": self.storage,
        }


TUMOUR_SITES: tuple[str, ...] = ("colorectal", "pancreas", "small_intestine", "stomach")

SCANNER_PROFILES: tuple[ScannerProfile, ...] = (
    ScannerProfile(
        institution="St. Aldhelm University Hospital", manufacturer="GE MEDICAL SYSTEMS",
        model="Revolution CT", kvp=120.0, kernel="STANDARD", pixel_spacing=0.703125,
        slice_thickness=1.25, slice_spacing=1.25, noise_hu=10.0, kernel_blur_px=0.7, hu_offset=0.0,
        storage="dicom_rtstruct", signed_pixels=False,
        series_descriptions={"non_contrast": "NC 1.25mm", "arterial": "ART 1.25mm",
                             "venous": "PV 1.25mm", "portal": "PORTAL 1.25mm",
                             "delayed": "DELAY 1.25mm"},
        patient_id_prefix="SAU", p_m1=0.30, grade_probs=(0.40, 0.40, 0.20), z_het_shift=0.0,
        z_size_shift=0.0, site_probs=(0.40, 0.30, 0.20, 0.10),
    ),
    ScannerProfile(
        institution="Klinikum Nordstadt", manufacturer="SIEMENS", model="SOMATOM Definition AS+",
        kvp=100.0, kernel="B30f", pixel_spacing=0.78125, slice_thickness=3.0, slice_spacing=2.5,
        noise_hu=14.0, kernel_blur_px=0.5, hu_offset=12.0, storage="dicom_nifti", signed_pixels=True,
        series_descriptions={"non_contrast": "Abdomen nativ 3.0 B30f",
                             "arterial": "Abdomen arteriell 3.0 B30f", "venous": "Abdomen PV 3.0 B30f",
                             "portal": "Abdomen portal 3.0 B30f",
                             "delayed": "Abdomen spaet 3.0 B30f"},
        patient_id_prefix="KN", p_m1=0.40, grade_probs=(0.30, 0.45, 0.25), z_het_shift=0.25,
        z_size_shift=0.15, site_probs=(0.30, 0.35, 0.25, 0.10),
    ),
    ScannerProfile(
        institution="Hopital Saint-Clair", manufacturer="Philips", model="Brilliance 64", kvp=120.0,
        kernel="B", pixel_spacing=0.859375, slice_thickness=5.0, slice_spacing=5.0, noise_hu=16.0,
        kernel_blur_px=0.9, hu_offset=-8.0, storage="nifti_nrrd", signed_pixels=True,
        series_descriptions={"non_contrast": "NC", "arterial": "ART", "venous": "PV",
                             "portal": "PORTAL", "delayed": "DELAYED"},
        patient_id_prefix="HSC", p_m1=0.25, grade_probs=(0.50, 0.35, 0.15), z_het_shift=-0.2,
        z_size_shift=-0.1, site_probs=(0.45, 0.20, 0.20, 0.15),
    ),
)


def scanner_profile(hospital: int) -> ScannerProfile:
    """Profile of hospital ``hospital`` (1-based); repeats get a new HU offset and noise level."""
    if hospital < 1:
        raise ValueError(f"hospital numbers start at 1, got {hospital}")
    base = SCANNER_PROFILES[(hospital - 1) % len(SCANNER_PROFILES)]
    cycle = (hospital - 1) // len(SCANNER_PROFILES)
    if cycle == 0:
        return base
    return replace(
        base,
        institution=f"{base.institution} (site {cycle + 1})",
        hu_offset=base.hu_offset + 6.0 * cycle,
        noise_hu=base.noise_hu * (1.0 + 0.1 * cycle),
        patient_id_prefix=f"{base.patient_id_prefix}{cycle + 1}",
    )
