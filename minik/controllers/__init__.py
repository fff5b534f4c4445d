"""Controllers: one reconciler per kind (namespace lifecycle, garbage collection, …)."""
