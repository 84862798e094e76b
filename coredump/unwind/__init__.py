"""Stack unwinding: from a thread's registers to its physical frames."""
