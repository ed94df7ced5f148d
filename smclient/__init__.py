"""smclient: a typed client for Amazon SageMaker inference endpoints."""

__all__: list[str] = []
