"""The pure core: values and rules, no I/O."""
