"""Adapters to training frameworks (``lfbtheory.adapters.torch``, extra ``torch``)."""
