"""The MLflow pyfunc wrapper: a :class:`StudyModel` that scores raw training-set rows.

Logged as an MLflow *model from code*: the model is the code file ``pyfunc_model.py`` (which
builds an empty :class:`StudyPyfunc`) plus the fitted :class:`StudyModel` as a joblib artifact,
loaded in :meth:`StudyPyfunc.load_context`. Nothing of the wrapper itself is pickled.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from radstore.models.study_model import StudyModel

STUDY_MODEL_ARTIFACT = "study_model"
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


class StudyPyfunc(PythonModel):
    """``predict(rows) -> DataFrame(score, high_risk[, survival_<h>])``; preprocessing (encoding,
    filters, scaling, PCA, upstream scores) happens inside."""

    def __init__(self, study_model: StudyModel | None = None) -> None:
        self.study_model = study_model

    def load_context(self, context) -> None:
        """Load the fitted study model from the ``study_model`` artifact (a joblib file)."""
        import joblib

        if self.study_model is None:
            self.study_model = joblib.load(context.artifacts[STUDY_MODEL_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if self.study_model is None:
            raise RuntimeError("StudyPyfunc has no study model: load it with "
                               "mlflow.pyfunc.load_model, which runs load_context")
        return self.study_model.predict(pd.DataFrame(model_input))


def log_study_model(study_model: StudyModel, name: str, **log_model_kwargs):
    """Log ``study_model`` to the active run as a model from code (``MODEL_CODE`` + a joblib
    artifact); ``log_model_kwargs`` go to ``mlflow.pyfunc.log_model``. Returns its ``ModelInfo``.
    MLflow's artifact progress bar is off meanwhile: checking the input example reloads the model
    from a local copy, which is no download the user waits for."""
    import joblib
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, _environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        path = Path(tmp) / "study_model.joblib"
        joblib.dump(study_model, path)
        return mlflow.pyfunc.log_model(name=name, python_model=MODEL_CODE,
                                       artifacts={STUDY_MODEL_ARTIFACT: str(path)},
                                       **log_model_kwargs)


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set to ``values`` inside the block, restored after (only these keys;
    ``unittest.mock.patch.dict`` would clear and rewrite the whole environment on exit)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
