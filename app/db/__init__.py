"""MongoDB through Beanie on PyMongo's async client."""
