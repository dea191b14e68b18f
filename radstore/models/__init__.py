"""Study model kinds (scikit-learn / scikit-survival estimators), fitting, evaluation, pyfunc."""
