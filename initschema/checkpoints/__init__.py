"""The Pretrained backend: opening a checkpoint (readers, downloads and the cache),
matching its keys, loading through a model's own load code."""
