"""QC reports, self-contained HTML pages (PNGs as base64 data URIs).

``reports/<cohort_id>/qc.html`` is one cohort's page; ``reports/qc.html`` compares every cohort in
the store side by side (scanner batch effects between hospitals).

Per scan: a thumbnail of the slice with the largest mask area (window [-160, 240] HU) with the mask
outline in red. Per hospital: histograms of in-plane spacing, slice spacing, slice thickness and
HU inside the masks (a seeded sample of ≤ 5000 voxels per scan). Then the rejections table.
Everything shown comes from the store (pseudonymous ids only).
"""

from __future__ import annotations

import base64
import html
import io
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radstore.config import Settings
from radstore.io import zarr_store
from radstore.io.tables import read_table

WINDOW: tuple[float, float] = (-160.0, 240.0)
HU_SAMPLE = 5000


def largest_area_slice(mask: np.ndarray) -> int:
    """Index ``z`` of the slice with the most foreground voxels (first one on ties)."""
    return int(np.argmax((mask > 0).reshape(mask.shape[0], -1).sum(axis=1)))


def overlay_rgb(image: np.ndarray, mask: np.ndarray, window: tuple[float, float] = WINDOW) -> np.ndarray:
    """2-D HU slice + label slice → RGB uint8: windowed grey with label boundaries in red."""
    from skimage.segmentation import find_boundaries

    lo, hi = window
    g = (np.clip((image.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(g[..., None], 3, axis=2)
    edge = find_boundaries(mask.astype(np.int32), mode="inner")
    rgb[edge] = (255, 40, 40)
    return rgb


def _png(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _fig_png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def scan_summary(volumes: Path, zarr_path: str, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(thumbnail PNG base64, sample of HU inside the masks) for one stored scan."""
    h = zarr_store.open_scan(volumes, zarr_path)
    segs = h.segmentation_ids
    seg = "gtv" if "gtv" in segs else segs[0]
    labels = h.labels(seg)
    z0 = min(i.bbox[0] for i in labels.values())
    z1 = max(i.bbox[1] for i in labels.values())
    m = np.asarray(h.mask(seg)[z0:z1])
    k = z0 + largest_area_slice(m)
    thumb = _png(overlay_rgb(np.asarray(h.image[k]), np.asarray(h.mask(seg)[k])))
    values = []
    for lab in labels:
        img, msk, _ = h.read_roi(seg, lab)
        values.append(img[msk])
    hu = np.concatenate(values) if values else np.empty(0, np.int16)
    if hu.size > HU_SAMPLE:
        hu = rng.choice(hu, HU_SAMPLE, replace=False)
    return thumb, hu


def distribution_figure(groups: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Histograms per hospital of spacing, thickness and HU (one panel per quantity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("spacing_xy", "in-plane spacing (mm)"), ("spacing_z", "slice spacing (mm)"),
              ("slice_thickness", "slice thickness (mm)"), ("hu", "HU inside masks (density)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for hosp, vals in groups.items():
            v = np.asarray([x for x in vals.get(key, []) if x is not None and np.isfinite(x)], float)
            v = v if key == "hu" else np.round(v, 3)  # header float noise would split the bins
            if v.size:
                ax.hist(v, bins=30 if key == "hu" else 15, alpha=0.6, label=hosp, density=key == "hu")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _fig_png(fig)


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def write_qc_report(settings: Settings, cohort_id: str, hospital: str) -> Path:
    """Build and atomically write ``reports/<cohort_id>/qc.html``; returns its path."""
    layout = settings.layout
    scans_p = layout.catalog_table("scans", cohort_id)
    rej_p = layout.catalog_table("rejections", cohort_id)
    scans = read_table(scans_p).to_pylist() if scans_p.is_file() else []
    rejections = read_table(rej_p).to_pylist() if rej_p.is_file() else []
    scans.sort(key=lambda r: (r["patient_id"], r["phase"], r["event_timestamp"]))
    rng = np.random.default_rng(settings.seed)
    dist: dict[str, list[float]] = {"spacing_xy": [], "spacing_z": [], "slice_thickness": [], "hu": []}
    rows = []
    for r in scans:
        thumb, hu = scan_summary(layout.volumes, r["zarr_path"], rng)
        dist["spacing_xy"].append(r["spacing_x"])
        dist["spacing_z"].append(r["spacing_z"])
        dist["slice_thickness"].append(r["slice_thickness"])
        dist["hu"].extend(hu.astype(float).tolist())
        rows.append(
            f'<tr class="scan" data-scan-id="{_esc(r["scan_id"])}"><td>{_esc(r["patient_id"])}</td>'
            f'<td>{_esc(r["scan_id"])}</td><td>{_esc(r["phase"])}</td>'
            f'<td>{_esc(r["event_timestamp"].date() if r["event_timestamp"] else "")}</td>'
            f'<td>{r["shape_z"]}×{r["shape_y"]}×{r["shape_x"]}</td>'
            f'<td>{r["spacing_x"]:.2f}×{r["spacing_y"]:.2f}×{r["spacing_z"]:.2f}</td>'
            f'<td>{_esc(", ".join(r["segmentation_ids"]))}</td><td>{_esc(r["lesions"])}</td>'
            f'<td>{f"{np.mean(hu):.0f}" if hu.size else ""}</td>'
            f'<td><img alt="thumbnail" width="160" src="data:image/png;base64,{thumb}"></td></tr>')
    figure = distribution_figure({hospital: dist}) if scans else ""
    rej_rows = [
        f'<tr class="rejection"><td>{_esc(r["input"])}</td><td>{_esc(r["rule"])}</td>'
        f'<td>{_esc(r["message"])}</td></tr>' for r in rejections]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QC {_esc(cohort_id)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;background:#fff;color:#222}}
table{{border-collapse:collapse;margin-bottom:2em}}td,th{{border:1px solid #ccc;padding:3px 6px;
font-size:13px;vertical-align:middle}}th{{background:#eef}}h1{{color:#224}}</style></head>
<body><h1>Ingest QC — cohort {_esc(cohort_id)} ({_esc(hospital)})</h1>
<p id="summary">{len(scans)} scans ingested, {len(rejections)} rejections.</p>
<h2>Distributions per hospital</h2>
{f'<img id="distributions" alt="distributions" src="data:image/png;base64,{figure}">' if figure else
 '<p>no scans</p>'}
<h2>Scans</h2>
<table id="scans"><tr><th>patient</th><th>scan</th><th>phase</th><th>date</th><th>shape z×y×x</th>
<th>spacing x×y×z mm</th><th>segmentations</th><th>lesions</th><th>mean HU in mask</th>
<th>largest-area slice</th></tr>
{"".join(rows)}</table>
<h2>Rejections</h2>
<table id="rejections"><tr><th>input</th><th>rule</th><th>message</th></tr>
{"".join(rej_rows)}</table>
</body></html>
"""
    out = layout.reports / cohort_id / "qc.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def write_store_qc_report(settings: Settings) -> Path:
    """Build and atomically write ``reports/qc.html``: for every cohort in the catalog, the
    distributions of in-plane spacing, slice spacing, slice thickness and HU inside the masks in
    one figure (overlaid per cohort), a summary table (scans, rejections, medians, HU mean ± SD)
    and links to the per-cohort pages."""
    layout = settings.layout
    cohorts = sorted(p.name.split("=", 1)[1] for p in (layout.catalog / "scans").glob("cohort=*"))
    rng = np.random.default_rng(settings.seed)
    groups: dict[str, dict[str, list[float]]] = {}
    rows = []
    for cid in cohorts:
        scans = read_table(layout.catalog_table("scans", cid)).to_pylist()
        rej_p = layout.catalog_table("rejections", cid)
        n_rej = read_table(rej_p).num_rows if rej_p.is_file() else 0
        dist: dict[str, list[float]] = {"spacing_xy": [], "spacing_z": [], "slice_thickness": [],
                                        "hu": []}
        for r in scans:
            dist["spacing_xy"].append(r["spacing_x"])
            dist["spacing_z"].append(r["spacing_z"])
            dist["slice_thickness"].append(r["slice_thickness"])
            dist["hu"].extend(scan_summary(layout.volumes, r["zarr_path"], rng)[1].astype(float).tolist())
        groups[cid] = dist
        hu = np.asarray(dist["hu"], float)

        def med(key: str, d: dict[str, list[float]] = dist) -> str:
            v = [x for x in d[key] if x is not None]
            return f"{np.median(v):.2f}" if v else ""

        rows.append(
            f'<tr class="cohort"><td><a href="{_esc(cid)}/qc.html">{_esc(cid)}</a></td>'
            f"<td>{len(scans)}</td><td>{n_rej}</td><td>{med('spacing_xy')}</td>"
            f"<td>{med('spacing_z')}</td><td>{med('slice_thickness')}</td>"
            f"<td>{f'{hu.mean():.1f} ± {hu.std():.1f}' if hu.size else ''}</td></tr>")
    figure = distribution_figure(groups) if groups else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QC: all cohorts</title>
<style>body{{font-family:sans-serif;margin:1.5em;background:#fff;color:#222}}
table{{border-collapse:collapse;margin-bottom:2em}}td,th{{border:1px solid #ccc;padding:3px 6px;
font-size:13px}}th{{background:#eef}}h1{{color:#224}}</style></head>
<body><h1>Ingest QC — all cohorts</h1>
<p id="summary">{len(cohorts)} cohorts.</p>
<h2>Distributions per hospital</h2>
{f'<img id="distributions" alt="distributions" src="data:image/png;base64,{figure}">' if figure else
 '<p>no scans</p>'}
<h2>Cohorts</h2>
<table id="cohorts"><tr><th>cohort</th><th>scans</th><th>rejections</th><th>median in-plane mm</th>
<th>median slice spacing mm</th><th>median thickness mm</th><th>HU in masks (mean ± SD)</th></tr>
{"".join(rows)}</table>
</body></html>
"""
    out = layout.reports / "qc.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
