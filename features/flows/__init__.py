"""Stage 2, flows: ``PacketBatch`` columns in; bidirectional flow records (``schema.FLOW_SCHEMA``, polars) out.

Reading order: ``extract.extract_flows`` drives ``builder.FlowBuilder`` over a capture's batches; the builder keys
packets and reduces them per flow (``state``), attributes fragments (``fragments``), tracks TCP
(``tcpstate``, ``history``, ``reuse``) with segmented scans (``segments``), and finishes flows into records
(``records``, with ``community_id``); ``schema`` defines the record once and ``table`` writes it as Parquet,
``zeek`` as Zeek's conn.log (TSV or JSON lines); ``carve`` streams a capture again and writes chosen flows'
packets out as captures.
"""
