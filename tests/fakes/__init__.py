"""Fakes of outside systems that the tests talk to over real sockets."""
