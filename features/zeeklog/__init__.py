"""Zeek logs as input: ``read`` parses Zeek's TSV and JSON-lines logs into typed frames (the inverse of the writers
in ``features.flows.zeek``); ``conn`` turns conn.log records into nta's flow table, so ``nta scan conn.log`` runs the
same features, model and report as a capture.
"""
