"""Running built images on a host: engine detection, ``doctor`` and ``verify``."""
