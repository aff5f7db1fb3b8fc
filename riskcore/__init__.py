"""Pure risk math for xmargin: numpy arrays and integers in, numbers out.

No I/O, no clock, no global state; randomness, when any, is passed in as a ``numpy.random.Generator``.
Units are part of every name (``*_raw`` on-chain integers, ``*_usd`` US dollars, ``*_bps`` basis points).
"""
