"""The scheduler: binds pending pods to nodes through filter plugins (one pure function each)."""
