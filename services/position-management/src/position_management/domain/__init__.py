"""Position-management domain: positions and P&L built from fills.

Plain Python over plain data: no I/O, no threads, the clock passed in.
"""
