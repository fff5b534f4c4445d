"""minik: a lightweight, single-host, k3s-like Kubernetes in one Python daemon."""

__version__ = "0.1.0"
KUBE_VERSION = "v1.32.0"
