"""A store whose MLflow SQLite database is copied from one migrated template per test process
(MLflow's Alembic migrations take ~20 s; the copy takes milliseconds)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from radstore.config import Settings


@functools.lru_cache(maxsize=1)
def _template_db() -> Path:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    d = Path(tempfile.mkdtemp(prefix="radstore-mlflow-template-"))
    atexit.register(shutil.rmtree, d, True)
    db = d / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{db}", (d / "artifacts").as_uri())
    return db


def mlflow_settings(store: Path) -> Settings:
    """Settings for a fresh store at ``store`` with an empty, already migrated MLflow database."""
    settings = Settings(store=store)
    db = settings.layout.mlflow_db
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_db(), db)
    return settings
