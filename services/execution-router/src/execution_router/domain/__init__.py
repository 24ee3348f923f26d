"""Execution-router domain: the synthetic market-data feed and the paper-trading venue.

Plain Python over plain data: no I/O, no threads, the clock passed in.
"""
