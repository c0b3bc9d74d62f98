"""The offline plan: the real program, run in-process under Pulumi mocks.

`sofacover plan` loads the stack files the way the Pulumi CLI does, runs `__main__.py`
under an in-process engine (pulumi.runtime mocks with a recording monitor) that answers with
deterministic, realistic outputs, and prints what `pulumi preview` would create.
"""
