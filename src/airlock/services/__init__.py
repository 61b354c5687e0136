"""The services: every rule and every mutation, one transaction per action.

Internal: except the modules ``airlock`` exports from (see ``airlock.__all__``).
"""
