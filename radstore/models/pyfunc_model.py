"""MLflow model-from-code file for a study model: MLflow copies this file into each logged model
and runs it at load time; the fitted model itself comes from the run's ``study_model`` artifact
(see :mod:`radstore.models.pyfunc`)."""

from mlflow.models import set_model

from radstore.models.pyfunc import StudyPyfunc

set_model(StudyPyfunc())
