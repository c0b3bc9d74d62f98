"""The one error type for bad stack configuration."""

from __future__ import annotations

import pulumi


class ConfigError(pulumi.RunError):
    """Stack configuration that cannot be deployed.

    Holds one message per problem; each names the stack file and the key path and says what
    would be valid. It derives from `pulumi.RunError`, so under `pulumi up` the engine prints
    the messages without a Python traceback.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))
