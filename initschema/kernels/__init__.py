"""Per-initializer tensor math: what each built-in writes into a tensor (the bits of
``torch.nn.init``), what an overwritten write draws, and MMEngine's init functions."""
