"""Stage 1, capture: capture files in; ``PacketBatch`` (one numpy column per header field, ``packets.py``) out.

Reading order: ``source.PacketSource`` opens a file, ``stream`` inflates and hashes its bytes, ``pcap``/``pcapng``
walk its records into chunks, ``linktypes`` and ``decode`` find the IP/transport headers of a chunk in bulk
(``decode_ref`` is the per-packet specification they are tested against), bad packets are counted by name;
``readahead``/``prefetch`` run all of it ahead of the next stage.
"""
