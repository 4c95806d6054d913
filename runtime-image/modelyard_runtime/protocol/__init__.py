"""Open Inference Protocol codecs (pure: no HTTP, gRPC or Prometheus imports)."""
