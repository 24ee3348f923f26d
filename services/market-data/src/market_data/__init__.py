"""Market data: sources behind one interface, and the producer that publishes their quotes."""
