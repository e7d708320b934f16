"""Isthmus: a service mesh in Python that speaks Istio config and Envoy xDS."""

__version__ = "0.1.0"
