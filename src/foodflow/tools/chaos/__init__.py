"""`foodflow chaos`: drive orders while killing and restarting everything, then check invariants."""
