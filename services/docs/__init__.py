"""Documents generated from the code and kept in the repository (state machines, AsyncAPI)."""
