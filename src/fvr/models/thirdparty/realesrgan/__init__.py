"""Real-ESRGAN x4plus: the RRDBNet architecture and its ncnn converter (:mod:`.rrdbnet`), the restorer and the
tiled up-sampler (:mod:`.model`)."""
