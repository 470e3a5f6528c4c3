"""Third-party architectures re-implemented in plain torch, one folder each with its converter from the published
weights (Real-ESRGAN's RRDBNet, the compact SRVGGNet)."""
