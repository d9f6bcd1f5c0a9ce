"""Model backends; each is registered by name in memorylab.models.registry and imported only when chosen."""
