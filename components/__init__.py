"""Pulumi component resources, one per file.

`components/<name>.py` holds `<Name>` and its `<Name>Args`.
"""
