"""The write side: event store, domain, command service, embedded NATS, CLI."""
