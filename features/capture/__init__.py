"""Stage 1, capture: capture files in; ``PacketBatch`` (one numpy column per header field, ``packets.py``) out.

Reading order: ``source.PacketSource`` opens a file, ``stream`` inflates and hashes its bytes, ``pcap``/``pcapng``
walk its records into chunks, ``linktypes`` and ``decode`` find the IP/transport headers of a chunk in bulk
(``slowpath`` peels 802.11 link layers frame by frame with dpkt; ``tunnels`` finds tunnel packets, whose inner
frames are decoded as one more chunk; ``decode_ref`` is the per-packet specification they are tested against),
bad packets are counted by name; ``filter`` narrows the read (time window, hosts, ports);
``readahead``/``prefetch`` run all of it ahead of the next stage. ``write`` writes frames back out (pcap, pcapng).
"""
