"""Pure patient model: clinical covariates, the planted outcome model and the oracle statistics.

The true model (identical in every hospital; hospitals differ only in case mix) is::

    z_het  ~ N(shift_h, 1)        lesion texture heterogeneity (latent)
    z_size ~ N(shift_h, 1)        index-lesion size (latent)
    A      = 16 * exp(0.55 z_het)                    HU, lesion texture amplitude (SD of T)
    necrosis_frac = clip(0.35 (z_het - 0.3), 0, 0.55)  necrotic core radius / lesion radius
    r1     = R * exp(0.35 z_size), clipped to [0.45 R, 2.2 R]   index-lesion radius (mm);
             R = 13 mm ('full') or 5.5 mm ('small', scaled with the small phantom)
    ki67 | grade: G1 ~ 1.5 % (0.5–2.9), G2 ~ 8 % (3–20), G3 ~ 35 % (21–90), log-normal

    eta = 1.0 z_het + 0.6 z_size + 0.5 [G2] + 1.1 [G3] + 0.8 m_stage + 0.3 log(ki67 / 5)

    T_death = 40 * (-log U1 * exp(-(eta - 1)))^(1/1.3)    months (Weibull PH, shape 1.3)
    T_prog  = 16 * (-log U2 * exp(-(eta - 1)))^(1/1.3)
    C       = min(months(index_date -> 2021-12-31), Exp(mean 120 months))  admin + random censoring
    os  = min(T_death, C),           os_event  = [T_death <= C]
    rfs = min(T_prog, T_death, C),   rfs_event = [min(T_prog, T_death) <= C]
    response ~ Bernoulli(sigmoid(0.2 - 0.9 z_het - 0.7 z_size - 0.6 m_stage - 0.5 [G3]))
    lesion radius at follow-up week t: r(t) = r * clip(exp(g t / 52), 0.5, 1.6),
             g = 0.25 (eta - 1) + N(0, 0.15)  per year

CEA and CA 19-9 are log-normal, shifted by M stage (and CEA by size), with no direct effect on eta.
The oracle C-index (Harrell) of ``eta`` is the best any model can reach on these data; a pipeline
that recovers heterogeneity and size from the images plus the clinical factors should come close.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from radstore.synth.config import TUMOUR_SITES, ScannerProfile

BETA = {"z_het": 1.0, "z_size": 0.6, "grade_G2": 0.5, "grade_G3": 1.1, "m_stage": 0.8,
        "log_ki67_over_5": 0.3}
ETA_CENTER = 1.0
WEIBULL_SHAPE = 1.3
SCALE_OS_MONTHS = 40.0
SCALE_PROG_MONTHS = 16.0
DROPOUT_MEAN_MONTHS = 120.0
ACCRUAL_START = dt.date(2016, 1, 1)
ACCRUAL_DAYS = 4 * 365
DATA_CUTOFF = dt.date(2021, 12, 31)
DAYS_PER_MONTH = 30.4375
RESPONSE_COEF = {"intercept": 0.2, "z_het": -0.9, "z_size": -0.7, "m_stage": -0.6, "grade_G3": -0.5}
AMPLITUDE_BASE_HU = 16.0
AMPLITUDE_SLOPE = 0.55
SIZE_SLOPE = 0.35

FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ines", "Jonas",
               "Karin", "Lukas", "Marie", "Noah", "Olga", "Paul", "Rosa", "Simon", "Tara", "Ugo")
LAST_NAMES = ("Adler", "Becker", "Dubois", "Fischer", "Garcia", "Hoffmann", "Jansen", "Keller",
              "Laurent", "Meyer", "Novak", "Olsen", "Peters", "Rossi", "Schmidt", "Thomas", "Vogel",
              "Weber", "Young", "Zimmer")
STREETS = ("Linden", "Mill", "Church", "Station", "Garden", "Park", "Oak", "River", "Hill", "Castle")
CITIES = ("Northam", "Easton", "Westbury", "Southport", "Kingsford", "Ashby")


@dataclass(frozen=True)
class PatientTruth:
    """Everything drawn for one patient (clinical, PHI, latent image drivers, outcomes)."""

    source_patient_id: str
    hospital: int
    index: int
    age: int
    sex: str
    tumour_site: str
    grade: int
    ki67: float
    m_stage: int
    cea: float
    ca199: float
    index_date: dt.date
    patient_name: str
    birth_date: dt.date
    address: str
    mrn: str
    z_het: float
    z_size: float
    amplitude_hu: float
    texture_scale_mm: float
    necrosis_frac: float
    n_lesions: int
    growth_per_year: float
    eta: float
    os_months: float
    os_event: int
    rfs_months: float
    rfs_event: int
    response_probability: float
    response: int


def linear_predictor(z_het: float, z_size: float, grade: int, m_stage: int, ki67: float) -> float:
    """``eta`` of the true Cox model (module docstring)."""
    return (BETA["z_het"] * z_het + BETA["z_size"] * z_size + BETA["grade_G2"] * (grade == 2)
            + BETA["grade_G3"] * (grade == 3) + BETA["m_stage"] * m_stage
            + BETA["log_ki67_over_5"] * math.log(ki67 / 5.0))


def response_probability(z_het: float, z_size: float, grade: int, m_stage: int) -> float:
    c = RESPONSE_COEF
    logit = (c["intercept"] + c["z_het"] * z_het + c["z_size"] * z_size + c["m_stage"] * m_stage
             + c["grade_G3"] * (grade == 3))
    return 1.0 / (1.0 + math.exp(-logit))


def _weibull_time(u: float, eta: float, scale: float) -> float:
    return scale * (-math.log(u) * math.exp(-(eta - ETA_CENTER))) ** (1.0 / WEIBULL_SHAPE)


def _ki67(rng: np.random.Generator, grade: int) -> float:
    median, lo, hi = {1: (1.5, 0.5, 2.9), 2: (8.0, 3.0, 20.0), 3: (35.0, 21.0, 90.0)}[grade]
    return round(float(np.clip(median * math.exp(rng.normal(0.0, 0.4)), lo, hi)), 1)


def draw_patient(rng: np.random.Generator, hospital: int, index: int,
                 profile: ScannerProfile) -> PatientTruth:
    """Draw one patient of hospital ``hospital`` (case mix from ``profile``) from the true model."""
    sex = "M" if rng.random() < 0.55 else "F"
    age = int(np.clip(round(rng.normal(63.0, 10.0)), 30, 88))
    site = TUMOUR_SITES[int(rng.choice(len(TUMOUR_SITES), p=profile.site_probs))]
    grade = int(rng.choice(3, p=profile.grade_probs)) + 1
    ki67 = _ki67(rng, grade)
    m_stage = int(rng.random() < profile.p_m1)
    z_het = float(rng.normal(profile.z_het_shift, 1.0))
    z_size = float(rng.normal(profile.z_size_shift, 1.0))
    cea = round(float(math.exp(rng.normal(math.log(3.0) + 0.8 * m_stage + 0.3 * z_size, 0.8))), 1)
    ca199 = round(float(math.exp(rng.normal(math.log(20.0) + 0.7 * m_stage, 1.0))), 1)
    index_date = ACCRUAL_START + dt.timedelta(days=int(rng.integers(0, ACCRUAL_DAYS)))
    birth_date = index_date - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
    name = f"{last}^{FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]}"
    address = (f"{int(rng.integers(1, 200))} {STREETS[int(rng.integers(len(STREETS)))]} Street, "
               f"{CITIES[int(rng.integers(len(CITIES)))]}")
    mrn = f"{int(rng.integers(10**7, 10**8))}"

    n_lesions = int(rng.choice(3, p=(0.3, 0.35, 0.35) if m_stage else (0.5, 0.3, 0.2))) + 1
    eta = linear_predictor(z_het, z_size, grade, m_stage, ki67)
    u1, u2 = float(rng.random()), float(rng.random())
    t_death = _weibull_time(max(u1, 1e-12), eta, SCALE_OS_MONTHS)
    t_prog = _weibull_time(max(u2, 1e-12), eta, SCALE_PROG_MONTHS)
    admin = (DATA_CUTOFF - index_date).days / DAYS_PER_MONTH
    cens = min(admin, float(rng.exponential(DROPOUT_MEAN_MONTHS)))
    os_months = min(t_death, cens)
    rfs_true = min(t_prog, t_death)
    p_resp = response_probability(z_het, z_size, grade, m_stage)
    return PatientTruth(
        source_patient_id=f"{profile.patient_id_prefix}-{index + 1:04d}",
        hospital=hospital, index=index, age=age, sex=sex, tumour_site=site, grade=grade, ki67=ki67,
        m_stage=m_stage, cea=cea, ca199=ca199, index_date=index_date, patient_name=name,
        birth_date=birth_date, address=address, mrn=mrn, z_het=z_het, z_size=z_size,
        amplitude_hu=AMPLITUDE_BASE_HU * math.exp(AMPLITUDE_SLOPE * z_het),
        texture_scale_mm=float(rng.uniform(1.2, 2.6)),
        necrosis_frac=float(np.clip(0.35 * (z_het - 0.3), 0.0, 0.55)),
        n_lesions=n_lesions,
        growth_per_year=0.25 * (eta - ETA_CENTER) + float(rng.normal(0.0, 0.15)),
        eta=eta,
        os_months=round(os_months, 2), os_event=int(t_death <= cens),
        rfs_months=round(min(rfs_true, cens), 2), rfs_event=int(rfs_true <= cens),
        response_probability=p_resp, response=int(rng.random() < p_resp),
    )


def index_lesion_radius(z_size: float, base_mm: float) -> float:
    """Index-lesion radius ``R exp(0.35 z_size)`` clipped to ``[0.45 R, 2.2 R]`` (mm)."""
    return float(np.clip(base_mm * math.exp(SIZE_SLOPE * z_size), 0.45 * base_mm, 2.2 * base_mm))


def growth_factor(growth_per_year: float, week: int) -> float:
    return float(np.clip(math.exp(growth_per_year * week / 52.0), 0.5, 1.6))


def oracle_c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float | None:
    """Harrell's C of ``risk`` (scikit-survival ``concordance_index_censored``); None without events."""
    from sksurv.metrics import concordance_index_censored

    event = np.asarray(event, dtype=bool)
    if not event.any():
        return None
    return float(concordance_index_censored(event, np.asarray(time, float), np.asarray(risk, float))[0])


def oracle_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC of the true response probability; None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, np.asarray(p, float)))
