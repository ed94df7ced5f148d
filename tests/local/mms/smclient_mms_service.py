"""The handler service multi-model-server runs for every model in the real-server test,
as a SageMaker multi-model container image configures it: the SageMaker inference
toolkit's handler service, with the model's ``code/`` folder importable (``inference.py``).

multi-model-server calls ``handle(None, context)`` once when it loads a model (``model_fn``
runs then: a ``MemoryError`` there is its 507) and ``handle(data, context)`` per request.
Each model has its own worker process, so one module-level service per process is one per
model.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
from sagemaker_inference.transformer import Transformer

_service: DefaultHandlerService | None = None


class _Handler(DefaultInferenceHandler):  # type: ignore[misc]
    def default_model_fn(self, model_dir: str, context: Any = None) -> Any:
        raise NotImplementedError("the model's inference.py defines model_fn")


def handle(data: Any, context: Any) -> Any:
    global _service
    if _service is None:
        model_dir = context.system_properties["model_dir"]
        sys.path.insert(0, os.path.join(model_dir, "code"))
        service = DefaultHandlerService(
            transformer=Transformer(default_inference_handler=_Handler())
        )
        service.initialize(context)  # model_fn: a MemoryError here makes the load a 507
        _service = service
    if data is None:
        return None
    return _service.handle(data, context)
