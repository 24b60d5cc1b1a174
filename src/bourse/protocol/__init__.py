"""The wire protocol, sans I/O: bytes in, requests out; results in, bytes out.

Offers the framing decoder and the length line bourse's own clients write
(``framing``, with the bare-XML scanner in ``bare_xml``), the hardened XML
reader (``reader``) and the grammar it applies (``grammar``), the reply
renderer (``render``), the one escaping every writer of the protocol's XML
uses (``xmltext``), the events they hand back (``events``), and one
connection's session, which keeps those rules in order (``session``).

May import: ``bourse.core`` (and lxml). Never the server, the store or the
benchmarks: it is tested, fuzzed and timed on bytes alone.
"""
