"""istiod: galley, citadel and pilot in one process (Istio's consolidated mode)."""
