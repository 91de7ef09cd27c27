"""`foodflow bench`: end-to-end throughput and latency of the running system, with ceilings."""
