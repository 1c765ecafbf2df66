"""Routing's learned classifier: free text of a report -> category and subcategory with
confidences. `Classifier.load(dir).predict(title, body)`; `LiveClassifier` for a running
routing (builds a missing model, follows promotions); `python -m services.routing model
build` and `retrain` to make models (training.py)."""

from services.routing.classify.model import Classifier, ModelError, Prediction

__all__ = ["Classifier", "ModelError", "Prediction"]
