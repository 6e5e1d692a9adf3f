"""Stage 2b, zeeklog: Zeek conn logs (TSV or JSON lines) in; the flow records of stage 2 (``schema.FLOW_SCHEMA``) out.

An input stage beside capture -> flows, for teams that keep Zeek logs rather than packets: ``read`` parses Zeek's
TSV and JSON-lines logs into typed frames (the inverse of the writers in ``features.flows.zeek``); ``conn`` turns
conn.log records into nta's flow table, so ``nta scan conn.log`` runs the same features, model and report as a
capture. It comes after kdd in the import order only to name the content features a log cannot give.
"""
