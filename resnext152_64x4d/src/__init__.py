"""Model-specific pieces; the shared code lives in common/."""
