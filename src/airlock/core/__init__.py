"""The pure core: values and rules, no I/O.

Internal: except the modules ``airlock`` exports from (see ``airlock.__all__``).
"""
