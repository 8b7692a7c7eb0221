"""Pure logic: no I/O, no clock, no settings object. Coverage, rules, mapping, guard, catalog,
detection, plans.
"""
