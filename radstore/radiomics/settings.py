"""PyRadiomics-compatible extraction settings (the ``params.yaml`` format), validated with pydantic.

A PyRadiomics parameter file has three sections (PyRadiomics docs, "Customizing the extraction"):
``setting`` (pre-processing and discretisation), ``imageType`` (Original, LoG, Wavelet, Square,
SquareRoot, Logarithm, Exponential, Gradient, LBP2D, LBP3D, with their own arguments and optional
per-image-type setting overrides) and ``featureClass`` (families, or lists of features).
``RadiomicsSettings.from_params`` reads such a file or dict; unknown keys (with the closest known
one), conflicting keys (``binWidth`` with ``binCount``; a key repeated with another value) and bad
values raise ``SettingsError`` naming the file, the field and the rule.

``compatibility`` (our extension, default ``"pyradiomics"``) switches the places where PyRadiomics
departs from the IBSI 1 definitions:

- ``"pyradiomics"``: Kurtosis is the plain 4th standardised moment; Energy/TotalEnergy/
  RootMeanSquared add ``voxelArrayShift``; fixed-bin-width edges start at a multiple of the bin width
  (``floor(x/w) - floor(min/w) + 1``).
- ``"ibsi"``: Kurtosis is excess kurtosis (minus 3, IBSI IPH6); ``voxelArrayShift`` must be 0;
  fixed-bin-width edges start at the lower re-segmentation bound when one is given, else at the ROI
  minimum (IBSI 1 eq. for FBS: ``floor((x - X_min)/w) + 1``).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from radstore.radiomics import registry

Interpolator = Literal["sitkNearestNeighbor", "sitkLinear", "sitkBSpline", "sitkGaussian",
                       "sitkLabelGaussian", "sitkHammingWindowedSinc", "sitkCosineWindowedSinc",
                       "sitkWelchWindowedSinc", "sitkLanczosWindowedSinc", "sitkBlackmanWindowedSinc"]
_SITK_INTERPOLATOR_CODES = {1: "sitkNearestNeighbor", 2: "sitkLinear", 3: "sitkBSpline"}


class SettingsError(ValueError):
    """Invalid radiomics settings; the message names the source, the field and the rule."""


class Setting(BaseModel):
    """The ``setting:`` section; names and defaults are PyRadiomics'."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    binWidth: float | None = Field(None, gt=0)
    binCount: int | None = Field(None, gt=0)
    resampledPixelSpacing: tuple[float, float, float] | None = None
    interpolator: Interpolator = "sitkBSpline"
    padDistance: int = Field(5, ge=0)
    preCrop: bool = False
    resegmentRange: tuple[float] | tuple[float, float] | None = None
    resegmentMode: Literal["absolute", "relative", "sigma"] = "absolute"
    resegmentShape: bool = False
    # radstore extension (compatibility: ibsi only): IBSI's intensity outlier filtering, after the
    # resegmentRange: keep ROI voxels within mean +- k sd of those left (IBSI CT configuration E)
    resegmentOutliers: float | None = Field(None, gt=0)
    normalize: bool = False
    normalizeScale: float = Field(1.0, gt=0)
    removeOutliers: float | None = Field(None, gt=0)
    voxelArrayShift: int = 0
    force2D: bool = False
    force2Ddimension: Literal[0, 1, 2] = 0
    distances: tuple[int, ...] = (1,)
    symmetricalGLCM: bool = True
    gldm_a: int = Field(0, ge=0)
    weightingNorm: Literal["manhattan", "euclidean", "infinity", "no_weighting"] | None = None
    label: int = Field(1, ge=1)
    minimumROIDimensions: Literal[1, 2, 3] = 2
    minimumROISize: int | None = Field(None, ge=1)
    correctMask: bool = False
    geometryTolerance: float | None = None
    additionalInfo: bool = False  # accepted for compatibility; diagnostics are never emitted

    @model_serializer(mode="wrap")
    def _without_unset_extensions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """PyRadiomics' keys, plus radstore's extensions only when set: settings without them keep
        their dump, hence their version hash."""
        out = handler(self)
        if self.resegmentOutliers is None:
            out.pop("resegmentOutliers", None)
        return out

    @field_validator("interpolator", mode="before")
    @classmethod
    def _interp_code(cls, v: Any) -> Any:
        return _SITK_INTERPOLATOR_CODES.get(v, v) if isinstance(v, int) else v

    @field_validator("distances")
    @classmethod
    def _distances(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(d < 1 for d in v):
            raise ValueError("distances must be a non-empty list of integers >= 1")
        return v

    @model_validator(mode="after")
    def _bins(self) -> Setting:
        if self.binWidth is not None and self.binCount is not None:
            raise ValueError("binWidth and binCount are mutually exclusive: set only one")
        return self

    @property
    def bin_width(self) -> float | None:
        """Fixed bin width in use (PyRadiomics default 25 when neither width nor count is set)."""
        if self.binCount is not None:
            return None
        return 25.0 if self.binWidth is None else self.binWidth


class LoGSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sigma: list[int | float] = Field(default_factory=list)

    @field_validator("sigma")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("LoG sigma values must be > 0 (mm)")
        return v


class WaveletSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wavelet: str = "coif1"
    start_level: int = Field(0, ge=0)
    level: int = Field(1, ge=1)

    @field_validator("wavelet")
    @classmethod
    def _known(cls, v: str) -> str:
        import pywt

        if v not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"unknown discrete wavelet {v!r} (see pywt.wavelist(kind='discrete'))")
        return v


class GradientSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gradientUseSpacing: bool = True


class LBP2DSettings(BaseModel):
    """PyRadiomics' LBP2D arguments (scikit-image ``local_binary_pattern``'s R, P and method)."""

    model_config = ConfigDict(extra="forbid")
    lbp2DRadius: float = Field(1.0, gt=0)
    lbp2DSamples: int = Field(8, ge=1)
    lbp2DMethod: Literal["default", "ror", "uniform", "var"] = "uniform"


class LBP3DSettings(BaseModel):
    """PyRadiomics' LBP3D arguments: spherical-harmonic degrees (``lbp3DLevels``), and the radius
    (voxels) and subdivisions of the icosphere sampled around each voxel."""

    model_config = ConfigDict(extra="forbid")
    lbp3DLevels: int = Field(2, ge=1)
    lbp3DIcosphereRadius: float = Field(1.0, gt=0)
    lbp3DIcosphereSubdivision: int = Field(1, ge=0)


_IMAGE_TYPES = ("Original", "LoG", "Wavelet", "Square", "SquareRoot", "Logarithm", "Exponential", "Gradient",
                "LBP2D", "LBP3D")
_OUTPUT_PREFIX = {"Original": "original", "Square": "square", "SquareRoot": "squareroot",
                  "Logarithm": "logarithm", "Exponential": "exponential", "Gradient": "gradient",
                  "LBP2D": "lbp-2D"}
_SETTING_KEYS = set(Setting.model_fields)
# filter arguments PyRadiomics also reads from the ``setting`` section (for every image type using them)
_FILTER_MODELS: dict[str, type[BaseModel]] = {"LoG": LoGSettings, "Wavelet": WaveletSettings,
                                              "Gradient": GradientSettings, "LBP2D": LBP2DSettings,
                                              "LBP3D": LBP3DSettings}
_FILTER_KEYS = {kind: set(model.model_fields) for kind, model in _FILTER_MODELS.items()}
# PyRadiomics keys radstore does not implement: why, for the error message
_UNSUPPORTED = {
    "voxelSetting": "voxel-based extraction (PyRadiomics' feature maps) is not supported",
    "label_channel": "vector (multi-channel) label maps are not supported: pass a single-label mask",
    "inputImage": "it is PyRadiomics 1's name for imageType (PyRadiomics 3 rejects it too): rename it "
                  "imageType",
}


class _NoConflictingKeysLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key repeated in one mapping with a different value (plain
    YAML keeps the last silently; PyRadiomics' loader refuses every repeat): a repeat with the same
    value loses nothing and is accepted."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, tuple[Any, int]] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            value = self.construct_object(value_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen and seen[key][0] != value:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice with different values (lines {seen[key][1]}, "
                    f"{line}): keep one", key_node.start_mark)
            seen.setdefault(key, (value, line))
        return super().construct_mapping(node, deep=deep)


def _did_you_mean(key: str, known: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a misspelt ``key``, else ``""``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close:
        lower = {k.lower(): k for k in known}
        close = [lower[key.lower()]] if key.lower() in lower else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _default_image_types() -> dict[str, dict[str, Any]]:
    """PyRadiomics' default ``imageType``: the original image only, with no filter options."""
    return {"Original": {}}


class RadiomicsSettings(BaseModel):
    """A whole PyRadiomics parameter set. ``model_dump(mode="json")`` is canonical (its hash is the
    feature-set version)."""

    model_config = ConfigDict(extra="forbid")

    setting: Setting = Field(default_factory=Setting)
    imageType: dict[str, dict[str, Any]] = Field(default_factory=_default_image_types)
    featureClass: dict[str, list[str] | None] | None = None
    compatibility: Literal["pyradiomics", "ibsi"] = "pyradiomics"

    @field_validator("imageType", mode="before")
    @classmethod
    def _image_types(cls, v: Any) -> Any:
        if v is None:
            return {"Original": {}}
        if not isinstance(v, Mapping):
            raise ValueError("imageType must be a mapping of image type name to its arguments")
        out: dict[str, dict[str, Any]] = {}
        for name, args in v.items():
            if name not in _IMAGE_TYPES:
                raise ValueError(f"image type {name!r} is not supported{_did_you_mean(name, _IMAGE_TYPES)} "
                                 f"(supported: {', '.join(_IMAGE_TYPES)})")
            args = dict(args or {})
            own = {k: args.pop(k) for k in list(args) if k not in _SETTING_KEYS}
            if name in _FILTER_MODELS:
                own = _FILTER_MODELS[name](**own).model_dump()
            elif own:
                raise ValueError(f"{name} takes no arguments of its own, got {sorted(own)}")
            overrides = Setting(**args).model_dump(include=set(args)) if args else {}
            out[name] = {**own, **overrides}
        if not out:
            raise ValueError("imageType enables no image type")
        return {k: out[k] for k in _IMAGE_TYPES if k in out}

    @field_validator("featureClass", mode="before")
    @classmethod
    def _classes(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, Mapping):
            raise ValueError("featureClass must be a mapping of family to a feature list (or null for all)")
        out: dict[str, list[str] | None] = {}
        for fam, feats in v.items():
            if fam not in registry.FEATURES:
                raise ValueError(f"unknown feature class {fam!r}; known: {', '.join(registry.FAMILIES)}")
            if feats is None or feats == []:
                out[fam] = None
                continue
            if isinstance(feats, str):
                feats = [feats]
            known = registry.family_features(fam, include_optional=True)
            deprecated = registry.DEPRECATED_EQUIVALENTS.get(fam, {})
            bad = [f for f in feats if f not in known and f not in deprecated]
            if bad:
                named = ", ".join(f"{f!r}{_did_you_mean(f, known)}" for f in bad)
                raise ValueError(f"unknown {fam} feature(s) {named}; known: {', '.join(known)}")
            for f in dict.fromkeys(f for f in feats if f in deprecated):
                warnings.warn(f"{fam} {f} is deprecated in PyRadiomics, which computes no value for it (it "
                              f"equals {deprecated[f]}): no column for it", UserWarning, stacklevel=2)
            if chosen := [f for f in known if f in feats]:
                out[fam] = chosen
        if not out:
            raise ValueError("featureClass enables no feature")
        return {k: out[k] for k in registry.FAMILIES if k in out}

    @model_validator(mode="after")
    def _consistent(self) -> RadiomicsSettings:
        if self.compatibility == "ibsi" and self.setting.voxelArrayShift != 0:
            raise ValueError("compatibility 'ibsi' requires voxelArrayShift = 0 (IBSI energy is unshifted)")
        if self.compatibility != "ibsi" and self.setting.resegmentOutliers is not None:
            raise ValueError("resegmentOutliers (IBSI's intensity outlier filtering, a radstore extension) "
                             "needs compatibility: ibsi; PyRadiomics' own is resegmentMode: sigma")
        if self.featureClass is not None and "shape2D" in self.featureClass and not self.setting.force2D:
            raise ValueError("featureClass shape2D needs setting force2D: true")
        for name, args in self.imageType.items():
            merged = self.setting.model_dump()
            own = {k: v for k, v in args.items() if k in _SETTING_KEYS}
            merged.update(own)
            try:
                Setting(**merged)
            except ValidationError as exc:
                why = "; ".join(str(e["msg"]) for e in exc.errors())
                if "binWidth and binCount" in why:
                    why += (" (PyRadiomics would silently use the binCount: to bin this image type by "
                            "width, give it binCount: null beside its binWidth)")
                raise ValueError(f"imageType {name}'s own {sorted(own)} over the setting section: "
                                 f"{why}") from None
            if name == "LBP3D" and merged["force2D"]:
                warnings.warn("LBP3D samples a sphere in 3D while force2D extracts features per slice: use "
                              "with caution (PyRadiomics warns likewise)", UserWarning, stacklevel=2)
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, params: str | Path | Mapping[str, Any] | None = None,
                    setting_overrides: Mapping[str, Any] | None = None) -> RadiomicsSettings:
        """Read a PyRadiomics parameter file (YAML/JSON path) or dict; ``None`` gives the defaults.
        ``setting_overrides`` replace keys of its ``setting`` section (PyRadiomics' command-line
        ``--setting key:value``)."""
        source = "<dict>"
        if params is None:
            source = "<defaults>"
            data: Any = {}
        elif isinstance(params, Mapping):
            data = dict(params)
        else:
            path = Path(params)
            source = str(path)
            if not path.is_file():
                raise SettingsError(f"{source}: params file not found")
            try:
                data = yaml.load(path.read_text(), Loader=_NoConflictingKeysLoader) or {}
            except yaml.YAMLError as exc:
                raise SettingsError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise SettingsError(f"{source}: top level must be a mapping with setting/imageType/featureClass")
        data = dict(data)
        if setting_overrides:
            if data.get("setting") is not None and not isinstance(data["setting"], Mapping):
                raise SettingsError(f"{source}: setting must be a mapping")
            data["setting"] = {**(data.get("setting") or {}), **setting_overrides}
            source += f" with --setting {', '.join(f'{k}:{v}' for k, v in setting_overrides.items())}"
        if data.get("setting") is None:
            data.pop("setting", None)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            msgs = []
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
                msgs.append(f"{loc}: {_explain(err)}")
            raise SettingsError(f"{source}: invalid radiomics settings: " + "; ".join(msgs)) from None

    @model_validator(mode="before")
    @classmethod
    def _filter_arguments_from_setting(cls, data: Any) -> Any:
        """PyRadiomics passes the whole ``setting`` section to every filter, so ``sigma`` there
        applies to LoG, ``wavelet``/``start_level``/``level`` to Wavelet, ``gradientUseSpacing`` to
        Gradient, the ``lbp2D*`` keys to LBP2D and the ``lbp3D*`` keys to LBP3D (an image type's own
        arguments win): move them to the image types that use them."""
        if not isinstance(data, Mapping) or not isinstance(data.get("setting"), Mapping):
            return data
        setting = dict(data["setting"])
        moved = {k: setting.pop(k) for kind in _FILTER_KEYS for k in _FILTER_KEYS[kind] if k in setting}
        if not moved:
            return data
        image_types = data.get("imageType")
        if isinstance(image_types, Mapping):
            image_types = {name: {**{k: v for k, v in moved.items() if k in _FILTER_KEYS.get(name, ())},
                                  **dict(args or {})} for name, args in image_types.items()}
        return {**data, "setting": setting, **({"imageType": image_types} if image_types is not None else {})}

    # ------------------------------------------------------------------ derived views
    def enabled_features(self) -> dict[str, tuple[str, ...]]:
        """family -> enabled feature names. No ``featureClass`` = every family but shape2D, which
        needs ``featureClass: {shape2D: ...}``. (PyRadiomics' own default also enables shape2D, but
        computes it only with force2D on ROIs one slice thick and skips it, with a warning, for all
        others: our columns depend on the settings alone.)"""
        if self.featureClass is None:
            fams = [f for f in registry.FAMILIES if f != "shape2D"]
            return {f: registry.family_features(f) for f in fams}
        return {fam: tuple(feats) if feats is not None else registry.family_features(fam)
                for fam, feats in self.featureClass.items()}

    def image_types(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(output prefix, filter kind, filter args incl. per-type overrides) in output order."""
        out: list[tuple[str, str, dict[str, Any]]] = []
        for kind, args in self.imageType.items():
            if kind in _OUTPUT_PREFIX:
                out.append((_OUTPUT_PREFIX[kind], kind, args))
            elif kind == "LoG":
                for s in args["sigma"]:
                    out.append((f"log-sigma-{str(s).replace('.', '-')}-mm-3D", kind, {**args, "sigma": s}))
            elif kind == "LBP3D":
                out += [(f"lbp-3D-m{n}", kind, {**args, "lbp3d_image": f"m{n}"})
                        for n in range(1, args["lbp3DLevels"] + 1)]
                out.append(("lbp-3D-k", kind, {**args, "lbp3d_image": "k"}))
            elif kind == "Wavelet":
                n_axes = 2 if self.setting.force2D else 3
                combos = [format(i, f"0{n_axes}b").replace("0", "L").replace("1", "H")
                          for i in range(1, 2 ** n_axes)]
                for lev in range(1, args["level"] + 1):
                    prefix = "wavelet" if lev == 1 else f"wavelet{lev}"
                    out += [(f"{prefix}-{c}", kind, {**args, "band": c, "band_level": lev}) for c in combos]
                prefix = "wavelet" if args["level"] == 1 else f"wavelet{args['level']}"
                out.append((f"{prefix}-{'L' * n_axes}", kind, {**args, "band": "L" * n_axes,
                                                                 "band_level": args["level"]}))
        return out

    def image_type_names(self) -> list[str]:
        return [name for name, _, _ in self.image_types()]

    def setting_for(self, args: Mapping[str, Any]) -> Setting:
        """The ``setting`` section with an image type's overrides (e.g. its own binWidth) applied."""
        over = {k: v for k, v in args.items() if k in _SETTING_KEYS}
        return self.setting.model_copy(update=over) if over else self.setting

    def pyradiomics_params(self) -> dict[str, Any]:
        """This configuration as a PyRadiomics params dict (for the pyradiomics backend)."""
        s = self.setting.model_dump(exclude_none=True)
        s.pop("additionalInfo", None)
        if self.setting.binCount is None and self.setting.binWidth is None:
            s["binWidth"] = 25.0
        for key in ("resampledPixelSpacing", "resegmentRange", "distances"):
            if key in s:
                s[key] = list(s[key])
        image_types: dict[str, Any] = {}
        for kind, args in self.imageType.items():
            a = dict(args)
            if kind == "LoG":
                a["sigma"] = list(a["sigma"])
            image_types[kind] = a
        enabled = self.enabled_features()
        return {"setting": s, "imageType": image_types,
                "featureClass": {fam: list(feats) for fam, feats in enabled.items()}}


_KNOWN_KEYS: dict[str, set[str]] = {
    "": set(RadiomicsSettings.model_fields), "setting": _SETTING_KEYS,
    "imageType": _SETTING_KEYS.union(*_FILTER_KEYS.values()),
}


def _explain(err: Any) -> str:
    """A pydantic error's message; for an unknown key, why it is refused or its likely spelling."""
    loc = err["loc"]
    if err["type"] != "extra_forbidden" or not loc:
        return str(err["msg"])
    key = str(loc[-1])
    if key in _UNSUPPORTED:
        return f"{err['msg']}: {_UNSUPPORTED[key]}"
    known = _KNOWN_KEYS.get(".".join(str(x) for x in loc[:-1]))
    hint = _did_you_mean(key, known) if known else ""
    return f"{err['msg']}{hint}"
