"""SRVGGNetCompact (realesr-animevideov3): the architecture and its ncnn converter."""
