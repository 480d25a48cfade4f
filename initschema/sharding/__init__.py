"""Where a tensor's shard lies in its logical tensor, and the seeded streams that give
every element the same value at any world size."""
