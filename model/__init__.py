"""MSMRNet: the network, its training, evaluation, inference and model files (torch only; no dpkt, no rich)."""
