"""The model zoo: the factories of the generated conv modules (generated/ALGO_conv.py).

from derive.models import create_model, list_models
net = create_model("hbnet56", num_classes=10)
"""

from derive.models.registry import (
    create_model,
    list_models,
    model_entry,
    register_model,
    resolve_model,
)

__all__ = ["create_model", "list_models", "model_entry", "register_model", "resolve_model"]
