"""Stage 3, kdd: flow records (and payload snippets) in; NSL-KDD's 41 feature columns (``columns``) out.

Reading order: ``frame.kdd_features`` computes the basic columns, ``services`` and ``flags`` (NSL-KDD's
vocabularies), ``windows`` (the 2-second and 100-connection host features) and ``content`` (from cleartext
payloads); ``nslkdd`` reads NSL-KDD text or labelled feature Parquet into the same frame, ``nslkdd_text`` writes it.
"""
