"""The MLflow pyfunc wrapper: a :class:`StudyModel` that scores raw training-set rows."""

from __future__ import annotations

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from radstore.models.study_model import StudyModel


class StudyPyfunc(PythonModel):
    """``predict(rows) -> DataFrame(score, high_risk[, survival_<h>])``; preprocessing (encoding,
    filters, scaling, PCA, upstream scores) happens inside."""

    def __init__(self, study_model: StudyModel) -> None:
        self.study_model = study_model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.study_model.predict(pd.DataFrame(model_input))
