"""Weight formats, below every network: the one strict state-dict loader, safetensors reading and the cache of
converted weights (:mod:`.state`), and the ncnn reader (:mod:`.ncnn`) that the third-party converters use."""
