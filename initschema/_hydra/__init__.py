"""The Hydra integration's parts: the generated ``init`` group and value origins."""
